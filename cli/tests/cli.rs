//! Drives the real `rookery` binary: `-c`, `-f`, and the REPL fed through
//! stdin.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn rookery(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_rookery"));
    command.current_dir(dir).env("ROOKERY_HISTORY", dir.join("history"));
    command
}

fn with_stdin(mut command: Command, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rookery");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("rookery runs")
}

use common::listing;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    common::write_fixtures(dir.path());
    dir
}

const NAMES_QUERY: &str = "SELECT name, width, height FROM images('mixed') ORDER BY name";

#[test]
fn command_mode_answers_with_a_corrupt_file_in_the_folder() {
    let dir = fixtures();
    let output = rookery(dir.path())
        .args(["--format", "csv", "-c", NAMES_QUERY])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "name,width,height\na,200,150\nb,16,16\ncorrupt,,\nempty,,\nmisnamed,2,2\nnotes,,\ntruncated,200,150\n"
    );
}

#[test]
fn file_mode_runs_scripts_in_order_and_stops_at_an_error() {
    let dir = fixtures();
    std::fs::write(
        dir.path().join("a.sql"),
        "CREATE VIEW v AS SELECT name FROM images('good');\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.sql"), "SELECT count(*) AS n FROM v;\n").unwrap();
    let output = rookery(dir.path())
        .args(["-q", "-f", "a.sql", "b.sql"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("| 7 |"), "{}", text(&output.stdout));

    // -f may also be repeated.
    let output = rookery(dir.path())
        .args(["-f", "a.sql", "-f", "b.sql", "--format", "json"])
        .output()
        .expect("run");
    assert_eq!(text(&output.stdout), "[\n  {\"n\":7}\n]\n");

    std::fs::write(dir.path().join("bad.sql"), "SELECT 1;\n\nSELEC 2;\nSELECT 3;\n").unwrap();
    let output = rookery(dir.path())
        .args(["--format", "csv", "-f", "bad.sql"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("bad.sql:3"), "{stderr}");
    assert!(stderr.contains("SELEC"), "{stderr}");
    assert!(
        !text(&output.stdout).contains('3'),
        "stopped before the third statement"
    );
}

#[test]
fn command_mode_fails_on_bad_sql() {
    let dir = fixtures();
    let output = rookery(dir.path())
        .args(["-c", "SELECT * FROM nowhere"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("nowhere"), "{}", text(&output.stderr));
}

#[test]
fn repl_handles_multiline_errors_and_commands() {
    let dir = fixtures();
    let input = "\
SELECT name,
       width
FROM images('good')
WHERE name = '1';
SELECT * FROM no_such_table;
SELECT 40 + 2 AS answer;
CREATE EXTERNAL TABLE frames STORED AS IMAGES LOCATION 'good/';
\\d
\\d frames
\\df image
\\h images
\\pset format csv
SELECT 'after pset' AS x;
\\q
SELECT 'not reached';
";
    let output = with_stdin(rookery(dir.path()), input);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The multi-line statement ran as one.
    assert!(stdout.contains("| 1    | 40    |"), "{stdout}");
    // An error is printed and the REPL goes on.
    assert!(stderr.contains("no_such_table"), "{stderr}");
    assert!(stdout.contains("| 42     |"), "{stdout}");
    // \d lists the table; \d NAME describes it.
    assert!(stdout.contains("| frames | images | 17      |"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("| image ") && l.contains("| image ")),
        "{stdout}"
    );
    // \df and \h show the function's documentation.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("| images ") && l.contains("| table ") && l.contains("| rookery |")),
        "{stdout}"
    );
    assert!(stdout.contains("images(location [, options])"), "{stdout}");
    assert!(stdout.contains("x\nafter pset\n"), "{stdout}");
    assert!(!stdout.contains("not reached"), "{stdout}");
    // History is kept between sessions.
    let history = std::fs::read_to_string(dir.path().join("history")).expect("history file");
    assert!(history.contains("SELECT 40 + 2 AS answer;"), "{history}");
}

#[test]
fn repl_prints_images_compactly() {
    let dir = fixtures();
    let output = with_stdin(
        rookery(dir.path()),
        "SELECT name, content, image FROM images('good/1.jpg');\n",
    );
    let stdout = text(&output.stdout);
    assert!(stdout.contains("| 1    | <jpeg 834 B> | <image 40x30x3> |"), "{stdout}");
}

#[test]
fn memory_limit_is_an_error_not_a_crash() {
    let dir = fixtures();
    // 200 KB cannot hold the sort of a few hundred thousand rows.
    let output = rookery(dir.path())
        .args([
            "--memory-limit",
            "200K",
            "-c",
            "SELECT v FROM generate_series(1, 300000) AS t(v) ORDER BY v DESC LIMIT 1 OFFSET 5",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        text(&output.stderr).contains("Resources exhausted"),
        "{}",
        text(&output.stderr)
    );
}

/// `s3://` locations configured by the environment alone, as datafusion-cli
/// does: COPY to s3, a table function over s3, a model on s3 in SQL and
/// in `classify`.
#[test]
fn s3_locations_from_the_environment() {
    let dir = fixtures();
    let server = common::s3::S3Server::start();
    server.create_bucket("cli-bucket");
    let model = std::fs::read(dir.path().join("models/colour_classifier.onnx")).expect("model");
    server.put_object("cli-bucket", "models/colour.onnx", &model);
    let run = |args: &[&str]| {
        let output = rookery(dir.path())
            .envs(server.environment())
            .args(args)
            .output()
            .expect("run");
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
        text(&output.stdout)
    };
    run(&[
        "-c",
        "COPY (SELECT name, content FROM images('colours/')) TO 's3://cli-bucket/colours/' STORED AS IMAGES",
    ]);
    let labels = run(&[
        "--format",
        "csv",
        "-c",
        "SELECT name, cnn_classify('s3://cli-bucket/models/colour.onnx', image, 'labels=red|green|blue') AS colour
         FROM images('s3://cli-bucket/colours/') ORDER BY name",
    ]);
    assert_eq!(labels, "name,colour\nblue,blue\ngreen,green\nred,red\n");
    let classified = run(&[
        "classify",
        "--model",
        "s3://cli-bucket/models/colour.onnx",
        "--options",
        "labels=red|green|blue",
        "--image",
        "colours/red.png",
    ]);
    assert_eq!(classified, "['red']\n");
}

fn classify(dir: &Path) -> Command {
    let mut command = rookery(dir);
    command.args([
        "classify",
        "--model",
        "models/colour_classifier.onnx",
        "--options",
        "labels=red|green|blue",
    ]);
    command
}

#[test]
fn classify_prints_a_label_per_image() {
    let dir = fixtures();
    let output = classify(dir.path())
        .args(["--image", "colours/red.png", "--image", "colours/green.jpg"])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "['red']\n['green']\n");
}

#[test]
fn classify_reads_stdin_and_prints_scores_when_verbose() {
    let dir = fixtures();
    let mut command = classify(dir.path());
    command
        .arg("--verbose")
        .stdin(std::fs::File::open(dir.path().join("colours/blue.png")).expect("open"));
    let output = command.output().expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    // Blue (20, 30, 210): logits 10 x (0.078, 0.118, 0.824), softmaxed.
    assert_eq!(
        text(&output.stdout),
        "[['blue', 1.00], ['green', 0.00], ['red', 0.00]]\n"
    );
}

#[test]
fn classify_reports_a_bad_image_and_fails() {
    let dir = fixtures();
    let output = classify(dir.path())
        .args([
            "--image",
            "colours/red.png",
            "--image",
            "mixed/corrupt.jpg",
            "--image",
            "missing.png",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(text(&output.stdout), "['red']\n");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("mixed/corrupt.jpg: cannot decode jpeg"), "{stderr}");
    assert!(stderr.contains("missing.png: No such file"), "{stderr}");
}

#[test]
fn classify_names_a_missing_model() {
    let dir = fixtures();
    let output = rookery(dir.path())
        .args(["classify", "--model", "nothing.onnx", "--image", "colours/red.png"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("model file nothing.onnx does not exist"),
        "{}",
        text(&output.stderr)
    );
}

/// sql/classify/ end to end on generated frames: train on the training
/// split, then validation accuracy in SQL.
#[test]
fn labelled_folder_scripts_train_and_validate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("frames");
    let status = rookery(dir.path())
        .args(["-q", "gen-frames", "--out"])
        .arg(&data)
        .args(["--count", "120"])
        .status()
        .expect("run");
    assert!(status.success());
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/classify");
    let output = rookery(dir.path())
        .args(["--format", "csv", "--set"])
        .arg(format!("data={}", data.display()))
        .args(["--set", "out=out", "--set", "epochs=6", "-f"])
        .args(["01_tables.sql", "02_train.sql", "03_validate.sql"].map(|f| scripts.join(f)))
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(dir.path().join("out/model.onnx").exists());
    let accuracy: f64 = stdout
        .lines()
        .skip_while(|l| !l.starts_with("frames,validation_accuracy"))
        .nth(1)
        .and_then(|l| l.split(',').nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {stdout}"));
    assert!(accuracy >= 0.8, "validation accuracy {accuracy}\n{stdout}");

    // Transfer learning on the same session's tables: here the frames model
    // itself is the featurizer (the README's run uses the sea-lion model).
    let transfer = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/transfer");
    let output = rookery(dir.path())
        .args(["--format", "csv", "--set"])
        .arg(format!("data={}", data.display()))
        .args([
            "--set",
            "out=out",
            "--set",
            "epochs=6",
            "--set",
            "featurizer=out/model.onnx",
            "-f",
        ])
        .args(["01_tables.sql", "02_train.sql", "03_validate.sql"].map(|f| scripts.join(f)))
        .args(["01_embed.sql", "02_head.sql", "03_compare.sql"].map(|f| transfer.join(f)))
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(dir.path().join("out/transfer.onnx").exists());
    let transfer_line = stdout
        .lines()
        .find(|l| l.starts_with("transfer (cnn_embed + linear_train),"))
        .unwrap_or_else(|| panic!("no comparison in {stdout}"));
    let accuracy: f64 = transfer_line
        .split(',')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("accuracy");
    assert!(accuracy >= 0.8, "{transfer_line}");
}

/// `rookery augment` then `rookery train` on its output, as the README shows.
#[test]
fn augment_then_train_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let status = rookery(dir.path())
        .args(["-q", "gen-frames", "--out", "frames", "--count", "20"])
        .status()
        .expect("run");
    assert!(status.success());
    let output = rookery(dir.path())
        .args(["augment", "--input_folder", "frames/frames", "--output_folder", "aug"])
        .args([
            "--label_file",
            "frames/labels.csv",
            "--new_label_and_weights_file",
            "aug.csv",
        ])
        .args(["--copies", "1", "--steps", "flip,rotate90,crop,jitter,noise"])
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(
        stdout.contains("wrote 40 images to aug (20 originals, 20 augmented copies)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("aug.csv"))
            .unwrap()
            .lines()
            .count(),
        41
    );

    let output = rookery(dir.path())
        .args(["--format", "csv", "train", "--images", "aug", "--labels", "aug.csv"])
        .args(["--epochs", "1", "--output", "m.onnx", "--options", "input_size=32"])
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.starts_with("model,classes,"), "{stdout}");
    assert!(dir.path().join("m.onnx").is_file());

    let output = rookery(dir.path())
        .args(["augment", "--input_folder", "missing", "--output_folder", "aug2"])
        .args([
            "--label_file",
            "frames/labels.csv",
            "--new_label_and_weights_file",
            "aug2.csv",
        ])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("image folder missing is not a folder"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn class_folder_trees_and_dive_videos() {
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |args: &[&str]| {
        let output = rookery(dir.path()).args(args).output().expect("run");
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{args:?}\n{stdout}\n{stderr}");
        stdout
    };
    run(&["-q", "gen-frames", "--tree", "--out", "tree", "--count", "20"]);
    let labels = listing(&dir.path().join("tree/frames"));
    assert_eq!(labels, ["interesting", "not_interesting"]);
    assert!(!dir.path().join("tree/labels.csv").exists());

    // No label file: labels are folder names, and the output keeps the tree.
    let stdout = run(&[
        "augment",
        "--input-folder",
        "tree/frames",
        "--output-folder",
        "aug",
        "--new-label-and-weights-file",
        "aug.csv",
        "--copies",
        "1",
    ]);
    assert!(
        stdout.contains("wrote 40 images to aug (20 originals, 20 augmented copies)"),
        "{stdout}"
    );
    let written: usize = labels
        .iter()
        .map(|l| listing(&dir.path().join("aug").join(l)).len())
        .sum();
    assert_eq!(written, 40);
    let csv = std::fs::read_to_string(dir.path().join("aug.csv")).unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.starts_with("interesting/") || l.starts_with("not_interesting/")),
        "{csv}"
    );
    let stdout = run(&[
        "--format",
        "csv",
        "train",
        "--images",
        "aug",
        "--epochs",
        "1",
        "--output",
        "model.onnx",
    ]);
    assert!(stdout.starts_with("model,classes,"), "{stdout}");

    // A folder without class folders is refused, naming the way out.
    run(&["-q", "gen-frames", "--out", "flat", "--count", "4"]);
    let output = rookery(dir.path())
        .args(["train", "--images", "flat/frames", "--output", "x.onnx"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("has no class folders"),
        "{}",
        text(&output.stderr)
    );

    // Dive videos, then the video triage of sql/classify/ with that model.
    run(&[
        "-q",
        "gen-frames",
        "--video",
        "--out",
        "dives",
        "--seconds",
        "2",
        "--clips",
        "1",
    ]);
    assert_eq!(listing(&dir.path().join("dives/dives")), ["dive_0.mp4"]);
    let stdout = run(&[
        "-q",
        "--format",
        "csv",
        "-c",
        "SELECT count(*) AS frames, max(frame_index) AS last FROM video_frames('dives/dives/')",
    ]);
    assert_eq!(stdout.trim(), "frames,last\n20,19");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sql/classify/04_video.sql");
    let script = script.to_string_lossy().to_string();
    run(&[
        "-q",
        "--set",
        "videos=dives/dives/",
        "--set",
        "out=.",
        "--set",
        "fps=5",
        "-f",
        &script,
    ]);
    // The model of one epoch may find nothing interesting; what it found
    // is named after its clip and frame.
    assert!(listing(&dir.path().join("interesting"))
        .iter()
        .all(|f| f.starts_with("dive_0.mp4_") && f.ends_with(".png")));
}

#[test]
fn crops_command_writes_labelled_crops() {
    let dir = fixtures();
    let output = rookery(dir.path())
        .args(["crops", "--dotted", "sealions/TrainDotted", "--plain", "sealions/Train"])
        .args(["--output_folder", "crops", "--size", "48"])
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(
        stdout.starts_with("wrote ") && stdout.contains("crops of 48x48"),
        "{stdout}"
    );
    let labels = std::fs::read_to_string(dir.path().join("crops/labels.csv")).expect("labels.csv");
    assert!(labels.lines().count() > 1, "{labels}");
}

#[test]
fn chart_draws_the_last_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = rookery(dir.path())
        .args([
            "-q",
            "-c",
            "SELECT * FROM (VALUES ('pups', 40), ('males', 10)) AS t(class, n) ORDER BY n DESC",
        ])
        .args(["-c", "\\chart", "-c", "\\chart n chart.png"])
        .output()
        .expect("run");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", text(&output.stderr));
    assert!(stdout.contains(&format!("pups  │{} 40", "█".repeat(50))), "{stdout}");
    assert!(stdout.contains(&format!("males │{} 10", "█".repeat(13))), "{stdout}");
    let png = image::open(dir.path().join("chart.png")).expect("a PNG");
    assert!(png.width() > 400);

    let output = rookery(dir.path()).args(["-c", "\\chart"]).output().expect("run");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("run a query first"),
        "{}",
        text(&output.stderr)
    );
}

/// `rookery demo` end to end on the fixtures' small sea-lion set: a
/// submission with the exact header, a row per test image in id order, and
/// the score table with the all-zeros line.
#[test]
fn demo_writes_a_submission_and_scores_it() {
    let dir = fixtures();
    let output = rookery(dir.path())
        .args(["demo", "--data", "sealions", "--out", "out", "--epochs", "1"])
        .output()
        .expect("run");
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let sub = std::fs::read_to_string(dir.path().join("out/sub.csv")).expect("sub.csv");
    let mut lines = sub.lines();
    assert_eq!(
        lines.next(),
        Some("test_id,adult_males,subadult_males,adult_females,juveniles,pups")
    );
    let ids: Vec<&str> = lines.map(|l| l.split(',').next().unwrap_or("")).collect();
    assert_eq!(ids, vec!["0"], "{sub}");
    assert!(stdout.contains("| all zeros "), "{stdout}");
    assert!(stdout.contains("out/sub.csv"), "{stdout}");
    assert!(stderr.contains("[6/6] 06_score.sql done"), "{stderr}");
}

/// Without ONNX Runtime installed, the error says what to run.
#[test]
fn missing_onnx_runtime_says_what_to_run() {
    let dir = fixtures();
    let output = classify(dir.path())
        .args(["--image", "colours/red.png"])
        .env("HOME", dir.path())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("ONNX Runtime is not installed"), "{stderr}");
    assert!(stderr.contains("scripts/setup-onnxruntime.sh"), "{stderr}");
}

/// One HTTP request to the server at `addr`: (status line, body).
fn http(addr: &str, request: &[u8]) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.write_all(request).expect("send");
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// A started `rookery serve`: its address and the line that tells about
/// the token.
fn serve_banner(child: &mut std::process::Child) -> (String, String) {
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let banner = lines.next().expect("banner").expect("banner");
    let addr = banner
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("address")
        .to_string();
    let token_line = lines.next().expect("token line").expect("token line");
    // The rest of stderr is drained, so the server never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    (addr, token_line)
}

/// The token a server printed (one it generated).
fn printed_token(token_line: &str) -> String {
    token_line
        .split("Bearer ")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("token")
        .to_string()
}

/// A request with this server's Host and token.
fn request(method_path: &str, token: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{method_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// `rookery serve`: a good image gets its label, a bad one a 400, and the
/// server goes on answering.
#[test]
fn serve_classifies_posted_images() {
    let dir = fixtures();
    let mut child = classify_serve(dir.path());
    let (addr, token_line) = serve_banner(&mut child);
    let token = printed_token(&token_line);

    let red = std::fs::read(dir.path().join("colours/red.png")).expect("red.png");
    let (status, body) = http(&addr, &request("POST /classify", &token, "", &red));
    assert_eq!(status, "HTTP/1.1 200 OK");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["label"], "red");
    assert_eq!(json["scores"][0]["label"], "red");

    let (status, body) = http(&addr, &request("POST /classify", &token, "", b"hello"));
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(body.contains("not a readable image"), "{body}");
    let (status, _) = http(&addr, &request("GET /nowhere", &token, "", b""));
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, body) = http(
        &addr,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok"));
    // No token, or another one: refused.
    let (status, _) = http(&addr, &request("POST /classify", "wrong", "", &red));
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    // /sql is off unless asked for.
    let (status, body) = http(&addr, &request("POST /sql", &token, "", b"SELECT 1"));
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("--sql"), "{body}");
    child.kill().expect("stop the server");
    let _ = child.wait();
}

/// `rookery serve --sql`: read-only over its tables, behind a token and a
/// Host check; writes only with --sql-writes; SIGTERM drains.
#[test]
fn serve_sql_is_safe_by_default() {
    let dir = fixtures();
    let mut child = rookery(dir.path())
        .args(["serve", "--sql", "--table", "frames=good/", "--addr", "127.0.0.1:0"])
        .args(["--max-result", "64K", "--body-timeout", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rookery serve");
    let (addr, token_line) = serve_banner(&mut child);
    let token = printed_token(&token_line);
    let sql = |text: &str| http(&addr, &request("POST /sql", &token, "", text.as_bytes()));

    let (status, body) = sql("SELECT count(*) AS n FROM frames");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "n\n7\n"));
    // Inside the table's folder read_blob reads; elsewhere it does not.
    let (status, body) = sql("SELECT read_blob(path) IS NOT NULL AS ok FROM frames WHERE name = '0'");
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\ntrue\n"));
    let (status, body) = sql("SELECT read_blob('/etc/passwd')");
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert!(body.contains("outside the locations"), "{body}");
    let (status, body) = sql("SELECT count(*) FROM images('/etc/')");
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    for write in [
        "COPY (SELECT 1 AS a) TO 'x.csv' STORED AS CSV",
        "CREATE TABLE t AS SELECT 1",
        "SET datafusion.execution.batch_size = 1",
        "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION '/etc/passwd'",
    ] {
        let (status, body) = sql(write);
        assert_eq!(status, "HTTP/1.1 400 Bad Request", "{write}: {body}");
        assert!(body.contains("read-only"), "{write}: {body}");
    }
    assert!(!dir.path().join("x.csv").exists());
    // Results have a size cap.
    let (status, body) = sql("SELECT * FROM generate_series(1, 1000000)");
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large", "{body}");
    // No token, a wrong Host (DNS rebinding), a cross-site form post.
    let raw = |text: &str| http(&addr, text.as_bytes());
    let (status, _) =
        raw("POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 8\r\n\r\nSELECT 1");
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    let rebound = format!(
        "POST /sql HTTP/1.1\r\nHost: evil.example:80\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Length: 8\r\n\r\nSELECT 1"
    );
    let (status, _) = raw(&rebound);
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    let (status, _) = http(
        &addr,
        &request(
            "POST /sql",
            &token,
            "Origin: http://evil.example\r\nContent-Type: text/plain\r\n",
            b"SELECT 1",
        ),
    );
    assert_eq!(status, "HTTP/1.1 403 Forbidden");
    // A body that never arrives is cut off.
    let (status, _) = raw(
        "POST /sql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer TOKEN\r\nContent-Length: 100\r\n\r\nSEL"
            .replace("TOKEN", &token)
            .as_str(),
    );
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");

    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().expect("server exits");
    assert!(status.success(), "{status:?}");

    // With --sql-writes, COPY writes.
    let mut child = rookery(dir.path())
        .args([
            "serve",
            "--sql-writes",
            "--addr",
            "127.0.0.1:0",
            "--token",
            "secret-token-1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rookery serve");
    let (addr, token_line) = serve_banner(&mut child);
    assert!(
        !token_line.contains("secret-token-1"),
        "a given token is printed: {token_line}"
    );
    let copy = b"COPY (SELECT 1 AS a) TO 'x.csv' STORED AS CSV";
    let (status, body) = http(&addr, &request("POST /sql", "secret-token-1", "", copy));
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(dir.path().join("x.csv").exists());
    child.kill().expect("stop the server");
    let _ = child.wait();
}

#[test]
fn cluster_processes_stay_on_loopback_unless_allowed() {
    let dir = tempfile::tempdir().expect("temp dir");
    for process in ["scheduler", "executor"] {
        let output = rookery(dir.path())
            .args([process, "--bind", "0.0.0.0:0"])
            .output()
            .expect("run");
        assert!(!output.status.success(), "{process}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains("--allow-remote"), "{process}: {stderr}");
    }
}

fn classify_serve(dir: &Path) -> std::process::Child {
    rookery(dir)
        .args([
            "serve",
            "--model",
            "models/colour_classifier.onnx",
            "--options",
            "labels=red|green|blue",
        ])
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rookery serve")
}

#[test]
fn a_copy_killed_part_way_leaves_every_original_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("t");
    std::fs::create_dir_all(&folder).unwrap();
    let mut originals = Vec::new();
    for i in 0..24 {
        let bytes = common::encode(&common::gradient(1200 + i, 900).into(), image::ImageFormat::Png);
        let name = format!("{i:02}.png");
        std::fs::write(folder.join(&name), &bytes).unwrap();
        originals.push((name, bytes));
    }
    let copy = "SET images.batch_rows = 1; \
                COPY (SELECT name, image_flip_h(image) AS image FROM images('t/')) TO 't/' STORED AS IMAGES";
    let mut child = rookery(dir.path())
        .args(["--partitions", "1", "-c", copy])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rookery");
    // Killed once its first file is staged.
    let staged = |names: &[String]| {
        names
            .iter()
            .filter(|n| n.starts_with(".rookery-copy-"))
            .any(|n| !listing(&folder.join(n)).is_empty())
    };
    let started = std::time::Instant::now();
    while !staged(&listing(&folder)) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the COPY ended before the test could kill it"
        );
        assert!(started.elapsed().as_secs() < 60, "nothing was staged in 60 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for (name, bytes) in &originals {
        assert_eq!(&std::fs::read(folder.join(name)).unwrap(), bytes, "{name} changed");
    }
    let names = listing(&folder);
    let left: Vec<_> = names.iter().filter(|n| !n.ends_with(".png")).collect();
    assert_eq!(left.len(), 1, "only the killed COPY's staging folder: {names:?}");

    // The next COPY into the folder removes the dead COPY's staging folder.
    let output = rookery(dir.path())
        .args([
            "-c",
            "COPY (SELECT 'extra' AS name, content FROM images('t/') LIMIT 1) TO 't/' STORED AS IMAGES",
        ])
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let names = listing(&folder);
    assert_eq!(names.len(), originals.len() + 1, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with(".png")), "{names:?}");
}

#[test]
fn a_resumable_copy_killed_part_way_resumes_to_the_same_bytes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("photos");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..24 {
        let bytes = common::encode(&common::gradient(2000 + i, 1500).into(), image::ImageFormat::Png);
        std::fs::write(folder.join(format!("{i:02}.png")), &bytes).unwrap();
    }
    // Tiles of every image counted by brightness: work per image, one key
    // per image.
    let copy = |target: &str, options: &str| {
        format!(
            "COPY (SELECT name, count(*) AS tiles, sum(CASE WHEN image_width(tile) > 0 THEN 1 ELSE 0 END) AS cut \
             FROM image_tiles('photos/', 64, 64) GROUP BY name ORDER BY name) \
             TO '{target}' STORED AS CSV OPTIONS ('format.has_header' 'true'{options})"
        )
    };
    let plain = rookery(dir.path())
        .args(["-c", &copy("plain.csv", "")])
        .output()
        .expect("run");
    assert!(plain.status.success(), "{}", text(&plain.stderr));

    let resumable = copy("sub.csv", ", 'resume' 'name', 'resume_every' '2'");
    let mut child = rookery(dir.path())
        .args(["--partitions", "1", "-c", &resumable])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rookery");
    // Killed once two parts are committed.
    let journal = dir.path().join(".sub.csv.rookery-resume");
    let started = std::time::Instant::now();
    while listing(&journal).iter().filter(|n| n.starts_with("part-")).count() < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the COPY ended before the test could kill it"
        );
        assert!(started.elapsed().as_secs() < 120, "nothing was committed in 120 s");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert!(!dir.path().join("sub.csv").exists(), "nothing written before the end");

    let resumed = rookery(dir.path())
        .args(["--partitions", "1", "-c", &resumable])
        .output()
        .expect("run");
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    assert_eq!(
        std::fs::read(dir.path().join("sub.csv")).unwrap(),
        std::fs::read(dir.path().join("plain.csv")).unwrap(),
        "resumed after kill -9 = one run"
    );
    assert!(!journal.exists(), "the journal goes once the target is written");
}

#[test]
fn doctor_and_classify_name_what_a_provider_misses() {
    let dir = fixtures();
    let doctor = rookery(dir.path()).arg("doctor").output().expect("run");
    let report = text(&doctor.stdout);
    assert!(doctor.status.success(), "{}", text(&doctor.stderr));
    assert!(
        report.contains("ONNX Runtime library: ") && report.contains("onnxruntime"),
        "{report}"
    );
    assert!(report.contains("  cpu       usable"), "{report}");
    // The tests run on the CPU build: the GPU providers say why not.
    assert!(report.contains("  cuda      not usable: "), "{report}");
    assert!(report.contains("  tensorrt  not usable: "), "{report}");

    let classify = |provider: &str| {
        rookery(dir.path())
            .args([
                "classify",
                "--model",
                "models/colour_classifier.onnx",
                "--image",
                "colours/red.png",
                "--options",
                "labels=red|green|blue",
                "--execution-provider",
                provider,
            ])
            .output()
            .expect("run")
    };
    let missing = classify("cuda");
    assert!(!missing.status.success());
    let why = text(&missing.stderr);
    assert!(why.contains("on execution provider cuda: cuda: "), "{why}");
    let fallback = classify("cuda|cpu");
    assert!(fallback.status.success(), "{}", text(&fallback.stderr));
    assert_eq!(text(&fallback.stdout).trim(), "['red']");
    let wrong = classify("gpu");
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("unknown provider 'gpu'"),
        "{}",
        text(&wrong.stderr)
    );
}
