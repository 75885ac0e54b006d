//! A real S3-compatible server (moto, from PyPI) on 127.0.0.1 for the object-store tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::support::python;

/// A moto server on a free port of 127.0.0.1, stopped when dropped.
pub struct S3 {
    child: Child,
    pub endpoint: String,
}

const SERVER: &str = r#"
import os, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"#;

impl S3 {
    /// Starts a server; `enforce_auth` makes it check credentials (unknown keys are refused).
    pub fn start(enforce_auth: bool) -> Self {
        let mut command = Command::new("python3");
        command
            .args(["-c", SERVER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if enforce_auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let mut child = command
            .spawn()
            .expect("python3 runs (install the test requirements: moto)");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!("moto did not start (pip install -r tests/requirements.txt): {line:?}")
        });
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The environment a program needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub fn configure(&self, command: &mut Command) {
        for (key, value) in self.env() {
            command.env(key, value);
        }
        command
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
    }

    /// Runs Python with boto3 and pyarrow pointed at this server (`s3` and `fs` are ready).
    pub fn python(&self, script: &str) -> String {
        let prelude = format!(
            "import boto3, json, os, pyarrow.fs, pyarrow.parquet as pq\n\
             s3 = boto3.client('s3', endpoint_url='{e}', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n\
             fs = pyarrow.fs.S3FileSystem(endpoint_override='{e}', scheme='http', access_key='testing', secret_key='testing', region='us-east-1')\n",
            e = self.endpoint
        );
        python(&format!("{prelude}{script}"))
    }

    pub fn create_bucket(&self, bucket: &str) {
        self.python(&format!("s3.create_bucket(Bucket='{bucket}')"));
    }

    /// Uploads a local folder under `s3://bucket/prefix/`.
    pub fn upload(&self, dir: &Path, bucket: &str, prefix: &str) {
        self.python(&format!(
            "root = {dir:?}\n\
             for base, _, files in os.walk(root, followlinks=True):\n\
             \x20   for f in files:\n\
             \x20       path = os.path.join(base, f)\n\
             \x20       s3.upload_file(path, '{bucket}', '{prefix}/' + os.path.relpath(path, root))\n",
            dir = dir.to_string_lossy()
        ));
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
