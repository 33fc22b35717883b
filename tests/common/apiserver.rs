//! The certificates-API test server (tests/certapi/server.py) standing in for kube-apiserver:
//! TLS with a serving certificate of the given CA, client certificates of that CA accepted,
//! seeded ConfigMaps, an admin kubeconfig from tests/certapi/mkenv.sh; killed on drop (its
//! log printed when the test panics).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::text;

pub struct ApiServer {
    dir: tempfile::TempDir,
    child: Child,
    /// mkenv.sh's admin kubeconfig (a client certificate of the CA, `server` = [`Self::url`]).
    pub admin: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- server.log ---\n{}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
        }
    }
}

impl ApiServer {
    /// Serves `configmaps` ((namespace, name, data)) with a certificate of `ca`/`ca_key`;
    /// `extra`: more server.py options.
    pub fn start(
        ca: &Path,
        ca_key: &Path,
        configmaps: &[(&str, &str, Value)],
        extra: &[&str],
    ) -> ApiServer {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        let mk = |more: &[&str]| {
            let o = Command::new("bash")
                .arg(repo.join("tests/certapi/mkenv.sh"))
                .arg("--ca-cert")
                .arg(ca)
                .arg("--ca-key")
                .arg(ca_key)
                .args(more)
                .arg(&api)
                .output()
                .unwrap();
            assert!(o.status.success(), "mkenv: {}", text(&o));
        };
        mk(&[]);
        let port_file = dir.path().join("port");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(repo.join("tests/certapi/server.py"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(api.join("server.crt"))
            .arg("--tls-key")
            .arg(api.join("server.key"))
            .arg("--client-ca")
            .arg(ca)
            .arg("--port-file")
            .arg(&port_file);
        for (i, (ns, name, data)) in configmaps.iter().enumerate() {
            let f = dir.path().join(format!("cm{i}.json"));
            let cm = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns},
                "data": data,
            });
            std::fs::write(&f, cm.to_string()).unwrap();
            cmd.arg("--configmap").arg(f);
        }
        let mut child = cmd
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                if !p.trim().is_empty() {
                    break p.trim().to_string();
                }
            }
            assert!(Instant::now() < deadline, "server did not start");
            if let Ok(Some(st)) = child.try_wait() {
                panic!("server exited: {st}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let url = format!("https://127.0.0.1:{port}");
        mk(&["--server", &url]);
        ApiServer {
            admin: api.join("admin.conf"),
            dir,
            child,
            url,
        }
    }

    /// The admin kubeconfig's path as a string.
    pub fn admin(&self) -> &str {
        self.admin.to_str().unwrap()
    }

    /// The real kubectl, as admin; its stdout (asserts success).
    pub fn kubectl(&self, args: &[&str]) -> String {
        let o = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.admin)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o));
        String::from_utf8(o.stdout).unwrap()
    }
}
