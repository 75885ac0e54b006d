//! Where files live: a local folder or a prefix of an object store (S3, GCS, Azure, HTTP),
//! behind one type, [`Folder`]. Object stores are built once per run from the URI's scheme and
//! bucket with `object_store`'s builders: credentials, region and endpoint come from the
//! standard environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`), and a pipeline may add options per
//! bucket under `stores:` (secrets only as references to environment variables).

mod folder;
mod open;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;

pub(crate) use folder::Folder;
pub(crate) use open::{StoreConfig, compile};

use crate::location::{Location, Uri};

/// Waiting for an object store gives up after this long by default (`--store-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// An object store that cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("{at}: {uri}: {problem}")]
    Open {
        at: Location,
        uri: String,
        problem: String,
    },
    #[error("{at}: {uri}: environment variable {variable} (named in stores:) is not set")]
    MissingEnv {
        at: Location,
        uri: String,
        variable: String,
    },
}

/// The object stores of one run, by `scheme://bucket`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stores {
    stores: HashMap<String, Arc<dyn ObjectStore>>,
}

impl Stores {
    /// Opens a store for every bucket the URIs name, with the pipeline's options for it.
    /// `uris` are each URI with where the pipeline names it.
    pub(crate) fn open<'a>(
        uris: impl IntoIterator<Item = (&'a Uri, &'a Location)>,
        configs: &[StoreConfig],
        timeout: Duration,
    ) -> Result<Self, ObjectsError> {
        let mut stores = HashMap::new();
        for (uri, at) in uris {
            let Uri::Url(url) = uri else { continue };
            let key = bucket_of(url);
            if stores.contains_key(&key) {
                continue;
            }
            let options = configs
                .iter()
                .filter(|c| c.covers(url))
                .flat_map(|c| c.options.iter());
            let store = open::open(url, options, timeout, at)?;
            stores.insert(key, store);
        }
        Ok(Self { stores })
    }

    /// Every store, with the URL of its bucket (`s3://bucket`), to register with DataFusion.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (url::Url, &Arc<dyn ObjectStore>)> {
        self.stores.iter().map(|(key, store)| {
            let url = url::Url::parse(key).expect("a bucket key is a URL");
            (url, store)
        })
    }

    /// The folder a URI names: on its object store, or on the local disk.
    pub(crate) fn folder(&self, uri: &Uri) -> Folder {
        match uri {
            Uri::Local(path) => Folder::local(path),
            Uri::Url(url) => {
                let store = self
                    .stores
                    .get(&bucket_of(url))
                    .cloned()
                    .expect("every URI of the pipeline has its store open");
                Folder::remote(store, url)
            }
        }
    }
}

/// The store of a URL's bucket, configured from the standard environment only: for processes
/// that read and write for a run without its pipeline (a cluster's scheduler and executors).
#[cfg(feature = "ballista")]
pub(crate) fn open_from_env(
    url: &url::Url,
    timeout: Duration,
) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
    open::open(
        url,
        std::iter::empty(),
        timeout,
        &Location::file("the environment"),
    )
}

/// `scheme://authority`: the part of a URL that names one object store.
fn bucket_of(url: &url::Url) -> String {
    format!("{}://{}", url.scheme(), url.authority())
}
