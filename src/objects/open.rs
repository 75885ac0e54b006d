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

/// Options for one bucket (`stores:` in the pipeline).
#[derive(Debug, Clone)]
pub(crate) struct StoreConfig {
    bucket: url::Url,
    pub(crate) options: Vec<StoreOption>,
}

impl StoreConfig {
    /// Whether these options apply to `url`: the same scheme and bucket.
    pub(crate) fn covers(&self, url: &url::Url) -> bool {
        url.scheme() == self.bucket.scheme() && url.authority() == self.bucket.authority()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoreOption {
    key: String,
    value: OptionValue,
    /// `stores.<bucket>.<key>`, and where the pipeline sets it.
    name: String,
    at: Location,
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

/// Compiles `stores:`: each prefix a URL of an object store that one of the `used` URIs (the
/// sources' and the output's) is in, each option one its builder knows, secrets only as `{
/// env: VARIABLE }`.
pub(crate) fn compile(
    c: &mut Compiler,
    specs: &IndexMap<String, IndexMap<String, StoreOptionSpec>>,
    used: &[&url::Url],
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
        // A run opens one store per bucket: options for a folder of it would apply, or not,
        // depending on which URI of the bucket the pipeline names first.
        if !url.path().trim_matches('/').is_empty() {
            c.problem(
                &["stores", prefix],
                format!(
                    "stores.{prefix}: options are per bucket; write {}://{} (every URI in the bucket uses them)",
                    url.scheme(),
                    url.authority()
                ),
            );
            continue;
        }
        // A misspelt bucket would leave its options (a region, an endpoint) to no store.
        let same = |u: &&&url::Url| u.scheme() == url.scheme() && u.authority() == url.authority();
        if !used.is_empty() && !used.iter().any(|u| same(&u)) {
            let buckets: Vec<String> = (used.iter())
                .map(|u| format!("{}://{}", u.scheme(), u.authority()))
                .collect();
            c.problem(
                &["stores", prefix],
                format!(
                    "stores.{prefix}: no source or output is in this bucket, so its options would apply to nothing; the pipeline's buckets: {}",
                    buckets.join(", ")
                ),
            );
            continue;
        }
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
                name: format!("stores.{prefix}.{key}"),
                at: c.at(&path),
            });
        }
        configs.push(StoreConfig {
            bucket: url,
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
    let options: Vec<&StoreOption> = options.collect();
    for option in &options {
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
    build(url, &pairs, timeout).map_err(|problem| {
        // A value the builder refuses (`allow_http: maybe`) is told at its own line: the one
        // option without which the store opens.
        let own = pairs.len() - options.len();
        let culprit = (0..options.len()).find(|i| {
            let without: Vec<_> = (pairs.iter().enumerate())
                .filter(|(j, _)| *j != own + i)
                .map(|(_, pair)| pair.clone())
                .collect();
            build(url, &without, timeout).is_ok()
        });
        match culprit.map(|i| options[i]) {
            Some(option) => ObjectsError::Open {
                at: option.at.clone(),
                uri: option.name.clone(),
                problem,
            },
            None => ObjectsError::Open {
                at: at.clone(),
                uri,
                problem,
            },
        }
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

/// An S3 endpoint must be an http(s) URL with a host: object_store panics on one it cannot
/// make a request of (`localhost:9000`, a trailing space). The pipeline's option wins over the
/// environment's, as in the builder.
#[cfg(feature = "aws")]
fn check_endpoint(pairs: &[(String, String)]) -> Result<(), String> {
    // The last of the pipeline's options named any of `keys`, as the builder takes it.
    let option = |keys: &[&str]| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| keys.contains(&key.to_ascii_lowercase().as_str()))
    };
    let option_endpoint = option(&[
        "endpoint",
        "endpoint_url",
        "aws_endpoint",
        "aws_endpoint_url",
    ])
    .map(|(key, value)| (format!("the store option {key}"), value.clone()));
    let from_env = || {
        ["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
            .into_iter()
            .find_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
    };
    let Some((source, endpoint)) = option_endpoint.or_else(from_env) else {
        return Ok(());
    };
    let valid = url::Url::parse(&endpoint)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        && endpoint.trim() == endpoint;
    if !valid {
        return Err(format!(
            "the S3 endpoint from {source} is not an http:// or https:// URL with a host (e.g. http://127.0.0.1:9000); fix {source}"
        ));
    }
    // Without allow_http, every request to an http:// endpoint fails as a "builder error".
    let allowed = |value: &str| value.trim().eq_ignore_ascii_case("true");
    let allow_http = match option(&["allow_http", "aws_allow_http"]) {
        Some((_, value)) => allowed(value),
        None => std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| allowed(&v)),
    };
    if endpoint.starts_with("http://") && !allow_http {
        return Err(format!(
            "the S3 endpoint from {source} is http://, which needs AWS_ALLOW_HTTP=true (or allow_http: true under stores:); set it, or use https://"
        ));
    }
    Ok(())
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
            check_endpoint(pairs)?;
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

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::check_endpoint;

    #[test]
    fn an_s3_endpoint_must_be_an_http_url_with_a_host() {
        let option = |v: &str| {
            vec![
                ("endpoint".to_string(), v.to_string()),
                ("allow_http".to_string(), "true".to_string()),
            ]
        };
        assert!(check_endpoint(&option("http://127.0.0.1:5000")).is_ok());
        let plain = [("endpoint".to_string(), "http://127.0.0.1:5000".to_string())];
        let plain = [plain.to_vec(), vec![("allow_http".into(), "false".into())]].concat();
        assert!(
            check_endpoint(&plain)
                .unwrap_err()
                .contains("needs AWS_ALLOW_HTTP=true")
        );
        for bad in ["127.0.0.1:5000", "http://127.0.0.1:5000 ", "ftp://host"] {
            let err = check_endpoint(&option(bad)).unwrap_err();
            assert!(
                err.contains("the S3 endpoint from the store option endpoint is not an http:// or https:// URL"),
                "{err}"
            );
        }
    }
}
