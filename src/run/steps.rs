//! The steps of one run, in order, each recording what it did in the manifest.

use std::time::Instant;

use datafusion::prelude::SessionContext;
use tracing::{Instrument, info, info_span, warn};

use super::{Locked, RunError, RunOptions};
use crate::checks::{self, Sizes};
use crate::engine::{self};
use crate::erasure;
use crate::features;
use crate::functions::IdentifierStats;
use crate::models;
use crate::objects::Folder;
use crate::offers;
use crate::pipeline::Pipeline;
use crate::report::{InvalidIdentifiers, Manifest, RunStatus, Step};
use crate::segments;
use crate::sources::{self, SourceError};
use crate::sql::{Params, Rule};
use crate::store::{OutputKind, RunDirs, Scratch, StagedRun, portable};
use crate::suppressions::{self, Held};

/// A run in progress: its session, staged folder and the manifest filled in step by step.
pub(super) struct Run<'a> {
    locked: &'a Locked<'a>,
    pipeline: &'a Pipeline,
    params: Params,
    ctx: SessionContext,
    identifiers: IdentifierStats,
    staged: StagedRun,
    previous_dir: Option<Folder>,
    force: bool,
    /// Compute features from all their events instead of the previous run's state.
    full_refresh: bool,
    manifest: Manifest,
    progress: super::Progress,
    /// `--param` overrides, for messages.
    overrides: Vec<(String, String)>,
    /// The models this run wrote without erased keys: rules that read only them need no
    /// erasure filter.
    clean: Vec<String>,
}

/// A run whose every step succeeded and every gate passed (or was forced): ready to publish.
pub(super) struct Finished {
    pub(super) staged: StagedRun,
    pub(super) manifest: Manifest,
    pub(super) ctx: SessionContext,
    /// The manifest of the run this one was compared with.
    pub(super) previous: Option<Manifest>,
}

impl<'a> Run<'a> {
    /// Stages an empty run and starts a session, under the pipeline's lock.
    pub(super) async fn begin(
        locked: &'a Locked<'a>,
        params: Params,
        options: &RunOptions,
    ) -> Result<Self, RunError> {
        let pipeline = locked.pipeline;
        let run_id = locked.run_id();
        let store = &locked.store;
        let scratch = match options.engine.engine {
            engine::Engine::Local => Scratch::Here,
            engine::Engine::Ballista(_) => Scratch::Shared,
        };
        let staged = store
            .stage(&locked.lock, options.date, &run_id, scratch)
            .await?;
        let previous_run = store.previous_run(options.date).await?;
        let previous = previous_run.map(|date| date.to_string());
        info!(run_id = %run_id, previous_run = previous.as_deref(), "run started");
        let previous_dir = match previous_run {
            Some(date) => store.published_run(date).await?,
            None => None,
        };
        let manifest = Manifest::start(
            &pipeline.name,
            options.date,
            &run_id,
            previous_run,
            params.to_json(),
        );
        let (ctx, identifiers) = engine::session(&options.engine, &locked.stores).await?;
        engine::share_scratch(&ctx, staged.work());
        Ok(Self {
            locked,
            pipeline,
            params,
            ctx,
            identifiers,
            staged,
            previous_dir,
            force: options.force,
            full_refresh: options.full_refresh,
            manifest,
            progress: locked.progress.clone(),
            overrides: options.params.clone(),
            clean: Vec::new(),
        })
    }

    /// Every key's rows, those of the models written without erased keys taken as they are.
    fn keep(&self) -> erasure::Keep<'_> {
        erasure::Keep {
            only: None,
            clean: &self.clean,
        }
    }

    fn dirs(&self) -> RunDirs<'_> {
        RunDirs {
            run_dir: self.staged.run(),
            work_dir: self.staged.work(),
            previous_run: self.previous_dir.as_ref(),
        }
    }

    /// An error of `step` that comes from arithmetic leaving its range, said as such: the run
    /// date or a parameter is most often why.
    fn overflow(&self, step: &str, err: RunError) -> RunError {
        let text = crate::error::chain(&err).to_ascii_lowercase();
        // A value too large for the decimals a sum keeps is the data's, not the date's.
        let decimal = text.contains("cast to decimal") || text.contains("to store in a decimal");
        if !text.contains("overflow") || decimal {
            return err;
        }
        let overrides: String = self
            .overrides
            .iter()
            .map(|(name, value)| format!(" and --param {name}={value}"))
            .collect();
        RunError::Overflow {
            step: step.to_string(),
            date: self.manifest.run_date,
            overrides,
            source: Box::new(err),
        }
    }

    fn step(&mut self, name: &str, rows: Option<u64>, clock: Instant) {
        self.manifest.steps.push(Step {
            step: name.to_string(),
            rows,
            elapsed_ms: clock.elapsed().as_millis() as u64,
        });
    }

    /// Registers every source under its contract. Data that breaks its contract is a broken
    /// upstream: the run is blocked, like by a failed gate.
    pub(super) async fn register_sources(&mut self) -> Result<(), RunError> {
        self.progress.set("reading the sources");
        let clock = Instant::now();
        match sources::register_all(&self.ctx, self.pipeline.sources.values()).await {
            Ok(inputs) => self.manifest.inputs = inputs,
            Err(err @ (SourceError::Contract { .. } | SourceError::Layout { .. })) => {
                return Err(self.blocked(vec![err.to_string()]));
            }
            Err(err) => return Err(err.into()),
        }
        self.step("register sources", None, clock);
        Ok(())
    }

    /// Everything between reading the sources and the circuit breakers: erasure, models,
    /// table checks, and the decisions (segments, suppressions, offers).
    pub(super) async fn compute(&mut self) -> Result<(), RunError> {
        self.progress.set("erasure");
        self.erasure().await?;
        self.models().await?;
        if let (Some((key, profile)), Some(erasure)) =
            (self.pipeline.audience(), &self.pipeline.erasure)
        {
            erasure::check_key_kind(&self.ctx, key, erasure, profile).await?;
        }
        self.table_checks().await?;
        self.decide().await
    }

    /// `err`, or when a line of a CSV or NDJSON source caused it (a value not of its column's
    /// type beyond the lines checked when the source was read), the source's contract broken
    /// at that file and line: data that breaks its contract blocks the run.
    pub(super) async fn with_data_fault(&mut self, err: RunError) -> RunError {
        let message = crate::error::chain(&err);
        // Sources that models read first: one only a check reads, or nothing, holds a fault
        // of the same column and type only by chance.
        let models = &self.pipeline.models;
        let read =
            |source: &&sources::Source| models.iter().any(|m| m.reads().contains(&source.name));
        let (first, last): (Vec<_>, Vec<_>) = self.pipeline.sources.values().partition(read);
        let sources = first.into_iter().chain(last);
        let broken = if let Some(fault) = sources::CsvFault::of(&message) {
            sources::find_csv_fault(&self.ctx, sources, fault).await
        } else if sources::is_json_fault(&message) {
            sources::find_json_fault(&self.ctx, sources).await
        } else {
            None
        };
        match broken {
            Some(broken) => self.blocked(vec![broken.to_string()]),
            None => err,
        }
    }

    /// Stops the run on data that breaks what the pipeline declares (a source's contract, the
    /// offers a rule names): nothing kept aside, nothing published.
    fn blocked(&mut self, failures: Vec<String>) -> RunError {
        self.manifest.status = RunStatus::Blocked;
        RunError::Blocked {
            failures,
            report: Box::new(self.manifest.clone()),
            kept: None,
        }
    }

    /// Registers the erased keys (and keeps them in state) before anything keyed is written.
    async fn erasure(&mut self) -> Result<(), RunError> {
        let Some(key) = self.pipeline.key() else {
            return Ok(());
        };
        if let Some(erasure) = &self.pipeline.erasure {
            erasure::plan(&self.ctx, key, erasure).await?;
        }
        // A rerun of an earlier date keeps the keys erased since: the runs after it are
        // rebuilt from this one.
        let store = &self.locked.store;
        let newest = store.published_dates().await?.into_iter().next_back();
        let newest = match newest.filter(|date| *date > self.params.run_date()) {
            Some(date) => store.published_run(date).await?,
            None => None,
        };
        let dirs = self.dirs();
        let earlier: Vec<&Folder> = dirs.previous_run.into_iter().chain(&newest).collect();
        let output = erasure::register(
            &self.ctx,
            key,
            self.pipeline.erasure.as_ref(),
            &earlier,
            dirs.run_dir,
            &self.params,
        )
        .await?;
        self.manifest.outputs.extend(output);
        Ok(())
    }

    /// Runs the models in order.
    async fn models(&mut self) -> Result<(), RunError> {
        for model in &self.pipeline.models {
            let clock = Instant::now();
            self.progress.set(format!("model {}", model.name));
            let span = info_span!("model", model = %model.name);
            let dirs = self.dirs();
            if let Some(feature) = &model.feature {
                self.progress.set(format!("feature {}", model.name));
                let inputs = features::Inputs {
                    ctx: &self.ctx,
                    key: self.pipeline.key(),
                    params: &self.params,
                    dirs,
                    full_refresh: self.full_refresh,
                };
                let done = features::run(feature, model.publish, &inputs)
                    .instrument(span)
                    .await
                    .map_err(|err| self.overflow(&format!("feature {}", model.name), err.into()))?;
                let rows = done.maintenance.rows;
                self.manifest.outputs.extend(done.outputs);
                self.manifest.features.push(done.maintenance);
                self.step(&format!("feature {}", model.name), Some(rows), clock);
                continue;
            }
            let done = models::run(
                &self.ctx,
                self.pipeline.key(),
                model,
                &self.params,
                dirs.run_dir,
                dirs.work_dir,
            )
            .instrument(span)
            .await
            .map_err(|err| self.overflow(&format!("model {}", model.name), err.into()))?;
            match done.rows {
                Some(rows) => info!(model = %model.name, rows, "model done"),
                None => info!(model = %model.name, "model planned as a view"),
            }
            if done.without_erased {
                self.clean.push(model.name.clone());
            }
            self.manifest.outputs.extend(done.output);
            self.step(&format!("model {}", model.name), done.rows, clock);
        }
        Ok(())
    }

    /// Source and model checks; a failed `error` check stops the run here unless forced.
    async fn table_checks(&mut self) -> Result<(), RunError> {
        self.progress.set("checks");
        let clock = Instant::now();
        let results = checks::run_table_checks(
            &self.ctx,
            &self.pipeline.checks,
            self.pipeline.key(),
            &self.params,
            self.staged.run(),
        )
        .instrument(info_span!("checks"))
        .await?;
        self.manifest.checks = results;
        self.step("checks", None, clock);
        if !self.force && self.manifest.blocked_by_checks() {
            return Err(self.block().await);
        }
        Ok(())
    }

    /// Suppressions, segments, offers and `suppressed/`.
    async fn decide(&mut self) -> Result<(), RunError> {
        let Some((key, _)) = self.pipeline.audience() else {
            return Ok(());
        };
        let pipeline = self.pipeline;
        let work_dir = self.staged.work().clone();
        self.progress.set("suppressions");
        let clock = Instant::now();
        for profile in pipeline.profile_files() {
            engine::check_one_row_per_key(&self.ctx, profile, key, &self.params).await?;
        }
        let profiles = pipeline.profiles();
        self.key_unchanged(key, &profiles).await?;
        suppressions::evaluate(
            &self.ctx,
            &pipeline.suppressions,
            key,
            &profiles,
            &self.params,
            self.keep(),
            &work_dir,
        )
        .await?;
        self.offers_named_by_rules().await?;
        self.step("suppressions", None, clock);
        let mut held = Vec::new();
        if let Some(segments) = &pipeline.segments {
            self.segments(key)
                .instrument(info_span!("segments"))
                .await?;
            held.push(Held {
                what: "segment",
                table: segments::HELD,
                reach: segments.reach(),
            });
        }
        if let Some(offers) = &pipeline.offers {
            self.offers(key).instrument(info_span!("offers")).await?;
            held.push(Held {
                what: "offer",
                table: offers::HELD,
                reach: offers.reach(),
            });
        }
        self.progress.set("suppressed");
        let clock = Instant::now();
        let (output, stats) = suppressions::write_suppressed(
            &self.ctx,
            key,
            &pipeline.suppressions,
            &held,
            &self.params,
            self.staged.run(),
        )
        .await?;
        let held_back = output.rows;
        self.manifest.outputs.push(output);
        self.manifest.suppressions = stats;
        self.step("suppressed", Some(held_back), clock);
        Ok(())
    }

    /// Refuses a key renamed or retyped since the previous run: changes and history follow
    /// each customer from run to run by key, and would read the previous run's tables under a
    /// name they lack, or compare keys of two types.
    async fn key_unchanged(&self, key: &str, profiles: &[&str]) -> Result<(), RunError> {
        let (Some(date), Some(profile)) = (self.manifest.previous_run, profiles.first()) else {
            return Ok(());
        };
        let previous: Manifest = self.locked.store.read_manifest(date).await?;
        // Audiences and offers start with the key.
        let keyed = previous
            .outputs
            .iter()
            .find(|o| matches!(o.kind, OutputKind::Audience | OutputKind::Offers));
        let Some(was) = keyed.and_then(|o| o.schema.first()) else {
            return Ok(());
        };
        let schema = (self.ctx.table(*profile).await)
            .map_err(|e| engine::EngineError::execution("the profile", e))?
            .schema()
            .as_arrow()
            .clone();
        let Ok(field) = schema.field_with_name(key) else {
            return Ok(());
        };
        let now = portable(field.data_type()).to_string();
        if was.name == key && was.data_type == now {
            return Ok(());
        }
        Err(RunError::KeyChanged {
            date,
            was: format!("{} ({})", was.name, was.data_type),
            now: format!("{key} ({now})"),
        })
    }

    async fn segments(&mut self, key: &str) -> Result<(), RunError> {
        let pipeline = self.pipeline;
        let Some(segments) = &pipeline.segments else {
            return Ok(());
        };
        let clock = Instant::now();
        self.progress.set("segments");
        let dirs = self.dirs();
        segments::evaluate(
            &self.ctx,
            key,
            segments,
            &pipeline.suppressions,
            &self.params,
            self.keep(),
            dirs.work_dir,
        )
        .await?;
        let done = segments::publish(
            &self.ctx,
            key,
            segments,
            &pipeline.activation_columns,
            &self.params,
            dirs,
        )
        .await?;
        for s in &done.stats {
            info!(segment = %s.name, size = s.size, added = s.added, removed = s.removed, "segment");
        }
        let members = done.stats.iter().map(|s| s.size).sum();
        self.manifest.outputs.extend(done.outputs);
        self.manifest.segments = done.stats;
        self.manifest.segment_overlap = done.overlap;
        self.manifest.migration = done.migration;
        self.step("segments", Some(members), clock);
        Ok(())
    }

    async fn offers(&mut self, key: &str) -> Result<(), RunError> {
        let pipeline = self.pipeline;
        let Some(offers) = &pipeline.offers else {
            return Ok(());
        };
        let clock = Instant::now();
        self.progress.set("offers");
        let dirs = self.dirs();
        let (ctx, params) = (&self.ctx, &self.params);
        offers::evaluate(
            ctx,
            key,
            offers,
            &pipeline.suppressions,
            params,
            self.keep(),
            dirs.work_dir,
        )
        .await?;
        let refused = offers::decide(ctx, key, offers, params, dirs.work_dir).await?;
        let global = pipeline.segments.as_ref().and_then(|s| s.holdout.as_ref());
        let done = offers::publish(ctx, key, offers, global, &refused, params, dirs).await?;
        for s in &done.stats {
            info!(offer = %s.name, eligible = s.eligible, assigned = s.assigned, capped = s.capped, "offer");
        }
        let assigned = done.stats.iter().map(|s| s.assigned).sum();
        self.manifest.outputs.extend(done.outputs);
        self.manifest.offers = done.stats;
        self.step("offers", Some(assigned), clock);
        Ok(())
    }

    /// Circuit breakers against the previous published run, then the run is ready to publish
    /// (or blocked).
    pub(super) async fn finish(mut self) -> Result<Finished, RunError> {
        self.manifest.finished_at = Some(chrono::Utc::now());
        self.count_identifiers();
        let previous: Option<Manifest> = match self.manifest.previous_run {
            Some(date) => Some(self.locked.store.read_manifest(date).await?),
            None => None,
        };
        let today = Sizes {
            segments: &self.manifest.segments,
            offers: &self.manifest.offers,
        };
        let before = previous.as_ref().map(|p| Sizes {
            segments: &p.segments,
            offers: &p.offers,
        });
        let breakers = checks::run_breakers(&self.pipeline.checks, today, before);
        self.manifest.checks.extend(breakers);
        if self.manifest.blocked_by_checks() {
            if !self.force {
                return Err(self.block().await);
            }
            self.manifest.forced = true;
            tracing::warn!("publishing despite failed checks (--force)");
        }
        Ok(Finished {
            staged: self.staged,
            manifest: self.manifest,
            ctx: self.ctx,
            previous,
        })
    }

    /// A SQL rule whose rows name offers, none of them the pipeline's (offer codes renamed
    /// upstream, a typo), would hold back nobody from anything: the run is blocked. Rows naming
    /// an offer the pipeline no longer has beside ones it has are only logged.
    async fn offers_named_by_rules(&mut self) -> Result<(), RunError> {
        let pipeline = self.pipeline;
        let offers: Vec<&str> = (pipeline.offers.iter())
            .flat_map(|o| o.list.iter().map(|offer| offer.name.as_str()))
            .collect();
        let named =
            suppressions::offers_named(&self.ctx, &pipeline.suppressions, &offers, &self.params)
                .await?;
        let mut failures = Vec::new();
        for rule in named.iter().filter(|r| r.unknown > 0) {
            if rule.known > 0 {
                warn!(
                    suppression = %rule.rule,
                    rows = rule.unknown,
                    "rows of the rule name an offer the pipeline does not have: they hold back nothing"
                );
                continue;
            }
            let choices = match offers.is_empty() {
                true => "it has none".to_string(),
                false => offers.join(", "),
            };
            let Some(suppression) = pipeline.suppressions.iter().find(|s| s.name == rule.rule)
            else {
                continue;
            };
            let file = match &suppression.rule {
                Rule::Sql(query) => format!(" ({})", query.path.display()),
                Rule::Conditions(_) => String::new(),
            };
            failures.push(format!(
                "{}: suppression {}{file}: its {} rows naming an offer name none of the pipeline's offers ({choices}), so it holds back nobody; return the offers' names as the pipeline spells them",
                suppression.at, rule.rule, rule.unknown
            ));
        }
        match failures.is_empty() {
            true => Ok(()),
            false => Err(self.blocked(failures)),
        }
    }

    /// What the identifier functions found invalid so far, when they ran.
    fn count_identifiers(&mut self) {
        self.manifest.invalid_identifiers =
            self.identifiers.counted().then(|| InvalidIdentifiers {
                emails: self.identifiers.invalid_emails(),
                phones: self.identifiers.invalid_phones(),
            });
    }

    /// Stops the run at a failed gate: keeps its report and failing rows aside, publishes
    /// nothing.
    async fn block(&mut self) -> RunError {
        self.count_identifiers();
        let mut manifest = self.manifest.clone();
        manifest.status = RunStatus::Blocked;
        manifest.finished_at = Some(chrono::Utc::now());
        let failures = manifest
            .checks
            .iter()
            .filter(|c| c.blocks())
            .map(|c| c.line())
            .collect();
        let store = &self.locked.store;
        let page = super::report::page(store, self.pipeline, &manifest)
            .await
            .unwrap_or_default();
        let kept = self.staged.keep_blocked(&manifest, page).await.ok();
        let _ = super::report::write_index(store).await;
        RunError::Blocked {
            failures,
            report: Box::new(manifest),
            kept,
        }
    }
}
