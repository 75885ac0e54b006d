//! Opening an object store for a URL: the builder of its scheme, the standard environment,
//! the pipeline's options for that bucket, and timeouts so that nothing waits forever.

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use object_store::ObjectStore;
#[cfg(feature = "cloud")]
use object_store::{ClientOptions, RetryConfig};

use super::ObjectsError;
use crate::compile::Compiler;
use crate::location::{Location, Uri};
use crate::spec::StoreOptionSpec;

/// Options for the buckets under one URL prefix (`stores:` in the pipeline).
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    prefix: url::Url,
    pub(crate) options: Vec<StoreOption>,
}

impl StoreConfig {
    /// Whether these options apply to `url` (same scheme and bucket, under the prefix).
    pub(crate) fn covers(&self, url: &url::Url) -> bool {
        url.scheme() == self.prefix.scheme()
            && url.authority() == self.prefix.authority()
            && url
                .path()
                .starts_with(self.prefix.path().trim_end_matches('/'))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoreOption {
    key: String,
    value: OptionValue,
}

#[derive(Debug, Clone)]
enum OptionValue {
    Text(String),
    /// Read from this environment variable when the store is opened.
    Env(String),
}

/// Option names that carry secrets: they must name an environment variable, never a value.
fn is_secret(key: &str) -> bool {
    ["secret", "token", "password", "key", "sas", "credential"]
        .iter()
        .any(|s| key.contains(s))
}

/// Compiles `stores:`: each prefix a URL of an object store, each option one its builder
/// knows, secrets only as `{ env: VARIABLE }`.
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, IndexMap<String, StoreOptionSpec>>,
) -> Vec<StoreConfig> {
    let mut configs = Vec::new();
    for (prefix, options) in specs {
        let url = match Uri::resolve(c.root(), prefix) {
            Ok(Uri::Url(url)) => url,
            _ => {
                c.problem(
                    &["stores", prefix],
                    format!("stores.{prefix}: name an object store URL such as s3://bucket"),
                );
                continue;
            }
        };
        let mut list = Vec::new();
        for (key, spec) in options {
            let path = ["stores", prefix.as_str(), key.as_str()];
            if let Err(problem) = check_key(url.scheme(), key) {
                c.problem(&path, format!("stores.{prefix}.{key}: {problem}"));
                continue;
            }
            let value = match spec {
                StoreOptionSpec::Env { env } => OptionValue::Env(env.clone()),
                _ if is_secret(key) => {
                    c.problem(
                        &path,
                        format!("stores.{prefix}.{key}: a secret never goes in the pipeline file; write {{ env: VARIABLE }} and set the variable where segflow runs"),
                    );
                    continue;
                }
                other => OptionValue::Text(other.text()),
            };
            list.push(StoreOption {
                key: key.clone(),
                value,
            });
        }
        configs.push(StoreConfig {
            prefix: url,
            options: list,
        });
    }
    configs
}

/// Whether the builder of `scheme` knows the option `key`.
fn check_key(scheme: &str, key: &str) -> Result<(), String> {
    let known = match scheme {
        #[cfg(feature = "aws")]
        "s3" | "s3a" => key.parse::<object_store::aws::AmazonS3ConfigKey>().is_ok(),
        #[cfg(feature = "gcp")]
        "gs" => key.parse::<object_store::gcp::GoogleConfigKey>().is_ok(),
        #[cfg(feature = "azure")]
        "az" | "abfs" | "abfss" | "azure" => {
            key.parse::<object_store::azure::AzureConfigKey>().is_ok()
        }
        #[cfg(feature = "cloud")]
        _ => key.parse::<object_store::ClientConfigKey>().is_ok(),
        // Without network stores no scheme takes options.
        #[cfg(not(feature = "cloud"))]
        _ => {
            let _ = key;
            false
        }
    };
    if known {
        Ok(())
    } else {
        Err(format!(
            "not an option of {scheme}:// stores (see object_store's configuration keys, e.g. region, endpoint, allow_http)"
        ))
    }
}

/// Opens the store of `url`'s bucket.
pub(super) fn open<'a>(
    url: &url::Url,
    options: impl Iterator<Item = &'a StoreOption>,
    timeout: Duration,
    at: &Location,
) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
    let uri = url.to_string();
    // As options (not a replaced `ClientOptions`), so settings from the environment such as
    // AWS_ALLOW_HTTP are kept; the pipeline's own options come after and win. A store that
    // does not answer must not hold a run for minutes.
    let connect = timeout.min(Duration::from_secs(10));
    let mut pairs = vec![
        ("timeout".to_string(), format!("{}ms", timeout.as_millis())),
        (
            "connect_timeout".to_string(),
            format!("{}ms", connect.as_millis()),
        ),
    ];
    for option in options {
        let value = match &option.value {
            OptionValue::Text(text) => text.clone(),
            OptionValue::Env(variable) => {
                std::env::var(variable).map_err(|_| ObjectsError::MissingEnv {
                    at: at.clone(),
                    uri: uri.clone(),
                    variable: variable.clone(),
                })?
            }
        };
        pairs.push((option.key.clone(), value));
    }
    build(url, &pairs, timeout).map_err(|problem| ObjectsError::Open {
        at: at.clone(),
        uri,
        problem,
    })
}

/// Applies `key: value` options a builder knows (unknown ones were refused at compile time).
#[cfg(feature = "cloud")]
macro_rules! configured {
    ($builder:expr, $pairs:expr) => {
        $pairs.iter().fold($builder, |b, (k, v)| match k.parse() {
            Ok(key) => b.with_config(key, v),
            Err(_) => b,
        })
    };
}

/// The builder of the URL's scheme, from the environment and the options.
fn build(
    url: &url::Url,
    pairs: &[(String, String)],
    timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, String> {
    // Each request and its retries together are bounded by `timeout`.
    #[cfg(feature = "cloud")]
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: timeout,
        ..RetryConfig::default()
    };
    #[cfg(feature = "cloud")]
    let bucket = format!("{}://{}", url.scheme(), url.authority());
    #[cfg(feature = "cloud")]
    let failed = |e: object_store::Error| e.to_string();
    // Unused by a build without the cloud features.
    let _ = (pairs, timeout);
    Ok(match url.scheme() {
        #[cfg(feature = "aws")]
        "s3" | "s3a" => {
            let builder = object_store::aws::AmazonS3Builder::from_env().with_url(&bucket);
            Arc::new(
                configured!(builder, pairs)
                    .with_retry(retry)
                    .build()
                    .map_err(failed)?,
            )
        }
        #[cfg(feature = "gcp")]
        "gs" => {
            let builder =
                object_store::gcp::GoogleCloudStorageBuilder::from_env().with_url(&bucket);
            Arc::new(
                configured!(builder, pairs)
                    .with_retry(retry)
                    .build()
                    .map_err(failed)?,
            )
        }
        #[cfg(feature = "azure")]
        "az" | "abfs" | "abfss" | "azure" => {
            let builder = object_store::azure::MicrosoftAzureBuilder::from_env().with_url(&bucket);
            Arc::new(
                configured!(builder, pairs)
                    .with_retry(retry)
                    .build()
                    .map_err(failed)?,
            )
        }
        #[cfg(feature = "http")]
        "http" | "https" => {
            // A plain http:// URI in the pipeline is the user's choice of transport.
            let client = ClientOptions::new()
                .with_allow_http(url.scheme() == "http")
                .with_timeout(timeout)
                .with_connect_timeout(timeout.min(Duration::from_secs(10)));
            let builder = object_store::http::HttpBuilder::new()
                .with_url(&bucket)
                .with_retry(retry)
                .with_client_options(client);
            Arc::new(builder.build().map_err(failed)?)
        }
        "memory" => Arc::new(object_store::memory::InMemory::new()),
        other => {
            return Err(format!(
                "this segflow was built without support for {other}:// (build with the default features)"
            ));
        }
    })
}
