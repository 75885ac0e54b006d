//! A folder: a local directory or a prefix in an object store, addressed the same way.

use std::fmt;
use std::sync::{Arc, LazyLock};

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

static LOCAL: LazyLock<Arc<dyn ObjectStore>> =
    LazyLock::new(|| Arc::new(LocalFileSystem::new()) as Arc<dyn ObjectStore>);

/// A folder of files: a local directory or an object-store prefix.
#[derive(Clone)]
pub(crate) struct Folder {
    store: Arc<dyn ObjectStore>,
    /// `file:///` or `s3://bucket/`: what object paths are relative to.
    base: String,
    path: ObjectPath,
    /// The folder on this machine, for local folders.
    local: Option<std::path::PathBuf>,
}

impl fmt::Debug for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Folder({self})")
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.local {
            Some(path) => write!(f, "{}", path.display()),
            None => write!(f, "{}{}", self.base, self.path),
        }
    }
}

impl Folder {
    /// A local directory (it need not exist yet).
    pub(crate) fn local(path: &std::path::Path) -> Self {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        let object = ObjectPath::from_absolute_path(&absolute)
            .unwrap_or_else(|_| ObjectPath::from(absolute.to_string_lossy().as_ref()));
        Self {
            store: LOCAL.clone(),
            base: "file:///".into(),
            path: object,
            local: Some(absolute),
        }
    }

    /// The prefix a URL names in `store`.
    pub(crate) fn remote(store: Arc<dyn ObjectStore>, url: &url::Url) -> Self {
        let base = format!("{}://{}/", url.scheme(), url.authority());
        // The URL's path is percent-encoded (a space is `%20`): decoded, it is the keys' prefix.
        let text = url.path().trim_matches('/');
        let path = ObjectPath::from_url_path(text).unwrap_or_else(|_| ObjectPath::from(text));
        Self {
            store,
            base,
            path,
            local: None,
        }
    }

    /// The folder or file `relative` (`a/b`, `x.parquet`) below this one.
    pub(crate) fn join(&self, relative: &str) -> Self {
        let mut path = self.path.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        Self {
            store: self.store.clone(),
            base: self.base.clone(),
            path,
            local: self.local.as_ref().map(|l| l.join(relative)),
        }
    }

    /// The folder this one (or this file) is in.
    pub(crate) fn parent(&self) -> Self {
        let parts: Vec<_> = self.path.parts().collect();
        let path = ObjectPath::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned());
        Self {
            store: self.store.clone(),
            base: self.base.clone(),
            path,
            local: self
                .local
                .as_ref()
                .map(|l| l.parent().unwrap_or(l).to_owned()),
        }
    }

    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn path(&self) -> &ObjectPath {
        &self.path
    }

    /// The folder on this machine, for a local folder.
    pub(crate) fn local_path(&self) -> Option<&std::path::Path> {
        self.local.as_deref()
    }

    /// The URL DataFusion lists: ends in `/` for a folder, not for a single file.
    pub(crate) fn url(&self, is_file: bool) -> String {
        // A local path may hold what a URL reads otherwise (`#`, `%`, `?`): encoded.
        let local = self.local.as_ref().and_then(|path| match is_file {
            true => url::Url::from_file_path(path).ok(),
            false => url::Url::from_directory_path(path).ok(),
        });
        if let Some(url) = local {
            return url.to_string();
        }
        let slash = if is_file { "" } else { "/" };
        format!("{}{}{slash}", self.base, self.path)
    }

    /// `path` relative to this folder (`audiences/segment=x/part-00000.parquet`).
    pub(crate) fn relative(&self, path: &ObjectPath) -> String {
        match path.prefix_match(&self.path) {
            Some(parts) => parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/"),
            None => path.to_string(),
        }
    }

    /// Whether any file exists at or below this folder.
    pub(crate) async fn exists(&self) -> Result<bool, object_store::Error> {
        if let Some(local) = &self.local {
            return Ok(local.exists());
        }
        if self.store.head(&self.path).await.is_ok() {
            return Ok(true);
        }
        let mut below = self.store.list(Some(&self.path));
        Ok(below.try_next().await?.is_some())
    }

    /// Every file at or below this folder.
    pub(crate) async fn files(&self) -> Result<Vec<object_store::ObjectMeta>, object_store::Error> {
        if self.local.as_ref().is_some_and(|l| !l.exists()) {
            return Ok(Vec::new());
        }
        self.store.list(Some(&self.path)).try_collect().await
    }
}
