//! A Ballista cluster on loopback from the real binary: `rookery
//! scheduler`, two `rookery executor`s, and `rookery --cluster` running
//! the sea-lion count (`01_tables.sql`, `05_count.sql`, `06_score.sql`) and
//! ad-hoc image queries, compared byte for byte with a local run.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn rookery(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rookery"));
    command.current_dir(dir).env("ROOKERY_HISTORY", dir.join("history"));
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `n` distinct free ports: all are held until all are chosen, so none
/// comes back twice.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("an address").port())
        .collect()
}

/// The scheduler and executors, killed when the test ends.
struct Cluster {
    processes: Vec<Child>,
    url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in &mut self.processes {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_cluster(dir: &Path, executors: usize) -> Cluster {
    let ports = free_ports(1 + 2 * executors);
    let scheduler_port = ports[0];
    let scheduler = format!("127.0.0.1:{scheduler_port}");
    let spawn = |args: &[&str]| {
        rookery(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a cluster process")
    };
    let mut cluster = Cluster {
        processes: vec![spawn(&["--partitions", "2", "scheduler", "--bind", &scheduler])],
        url: format!("df://{scheduler}"),
    };
    wait_for_port(scheduler_port);
    for i in 0..executors {
        let (flight, grpc) = (ports[1 + 2 * i], ports[2 + 2 * i]);
        cluster.processes.push(spawn(&[
            "--partitions",
            "2",
            "executor",
            "--scheduler",
            &scheduler,
            "--bind",
            &format!("127.0.0.1:{flight}"),
            "--grpc-port",
            &grpc.to_string(),
            "--concurrency",
            "1",
        ]));
        wait_for_port(flight);
    }
    cluster
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("run rookery");
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

#[test]
fn the_count_on_two_executors_equals_the_local_one() {
    let (_root, dir) = common_fixtures();
    let path = dir.as_path();
    // A model, trained locally (one epoch: the count need not be good).
    run(rookery(path).args(["-q", "demo", "--data", "sealions", "--out", "model", "--epochs", "1"]));

    let cluster = start_cluster(path, 2);
    let count = |out: &str, cluster: Option<&str>| {
        let mut command = rookery(path);
        if let Some(url) = cluster {
            command.args(["--cluster", url]);
        }
        command.args([
            "-q",
            "--set",
            "data=sealions",
            "--set",
            &format!("out={out}"),
            "--set",
            "model=model/model.onnx",
            "--set",
            "count_model=model/count_model.onnx",
            "-f",
            "../sql/sealions/01_tables.sql",
            "../sql/sealions/05_count.sql",
            "../sql/sealions/06_score.sql",
        ]);
        run(&mut command)
    };
    let local = count("local", None);
    let remote = count("remote", Some(&cluster.url));
    for file in ["sub.csv", "sub_peaks.csv", "sub_counts.csv"] {
        let (a, b) = (
            std::fs::read(path.join("local").join(file)).expect("local output"),
            std::fs::read(path.join("remote").join(file)).expect("cluster output"),
        );
        assert_eq!(text(&a), text(&b), "{file}");
    }
    assert_eq!(text(&local.stdout), text(&remote.stdout).replace("remote/", "local/"));

    // Ad-hoc queries over images, tiles and models give the same tables.
    let queries = [
        "SELECT name, format, width, height FROM images('good/') ORDER BY name",
        "SELECT name, count(*) AS tiles FROM image_tiles('sealions/Test/', 64, 32) GROUP BY name ORDER BY name",
        "SELECT name, cnn_classify('models/colour_classifier.onnx', image, 'labels=red|green|blue') AS c
         FROM images('colours/') ORDER BY name",
    ];
    for query in queries {
        let local = run(rookery(path).args(["--format", "csv", "-c", query]));
        let remote = run(rookery(path).args(["--cluster", &cluster.url, "--format", "csv", "-c", query]));
        assert_eq!(text(&local.stdout), text(&remote.stdout), "{query}");
    }
    // A resumable COPY runs its parts on the cluster and commits them
    // here: the file equals a plain local COPY's, and its journal is gone.
    let copy = |target: &str, options: &str| {
        format!(
            "COPY (SELECT name, count(*) AS tiles FROM image_tiles('sealions/Test/', 64, 32) GROUP BY name ORDER BY name)
             TO '{target}' STORED AS CSV OPTIONS ('format.has_header' 'true'{options})"
        )
    };
    run(rookery(path).args(["-c", &copy("plain.csv", "")]));
    let resumable = copy("resumed.csv", ", 'resume' 'name', 'resume_every' '1'");
    run(rookery(path).args(["--cluster", &cluster.url, "-c", &resumable]));
    assert_eq!(
        std::fs::read(path.join("resumed.csv")).expect("the cluster's COPY"),
        std::fs::read(path.join("plain.csv")).expect("the local COPY")
    );
    assert!(!path.join(".resumed.csv.rookery-resume").exists());
}

/// The fixtures, plus a link to the workspace's `sql/` one level up, so
/// the scripts run as `../sql/...` from the fixture folder.
fn common_fixtures() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("work");
    common::write_fixtures(&dir);
    let sql = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql");
    std::os::unix::fs::symlink(sql, root.path().join("sql")).expect("link sql/");
    (root, dir)
}
