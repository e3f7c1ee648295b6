//! The shell: runs SQL statements and backslash commands, prints results.
//! The REPL, `rookery -f`, `rookery -c` and `\i` all go through it.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use rookery_image::is_image_type;
use rookery_models::control::TrainingControl;
use rookery_models::train::EpochReport;

use crate::chart::{text_chart, write_png_chart, ChartData};
use crate::command::{help_text, Command};
use crate::output::{write_results, Layout, OutputFormat, ResultWriter};
use rookery::exec::{catching_panics, is_blank_sql, parse_statement, split_sql, stream_statement_watched};
use rookery::functions::{list_functions, render_help};
use rookery::progress::{PlanProgress, ScanCounts};

/// Rows shown by default in table format when interactive.
pub const DEFAULT_MAX_ROWS: usize = 40;

/// What `\q` or the end of input asks the caller to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// Shell settings and the session they apply to.
pub struct Shell {
    pub ctx: SessionContext,
    pub format: OutputFormat,
    /// Rows shown in table format; `None` shows all.
    pub max_rows: Option<usize>,
    pub timing: bool,
    pub quiet: bool,
    /// Show progress on stderr for statements that take over a second.
    pub show_progress: bool,
    /// Script variables, substituted for `${name}`.
    vars: HashMap<String, String>,
    /// Variables given on the command line, which `\set` does not change
    /// (so a script's `\set` is its default).
    pinned: HashSet<String>,
    /// The session's `cnn_train` control: reset before each statement,
    /// cancelled by the REPL's Ctrl-C.
    pub training: TrainingControl,
    /// The last result's first rows, for `\chart`.
    pub last_result: Option<ChartData>,
}

/// One line per training epoch, as the CLI prints it on stderr.
pub fn epoch_line(e: &EpochReport) -> String {
    let accuracy = e
        .train_accuracy
        .map(|v| format!(", train accuracy {v:.3}"))
        .unwrap_or_default();
    let validation = match (e.validation_accuracy, e.validation_loss) {
        (Some(v), _) => format!(", validation accuracy {v:.3}"),
        (None, Some(v)) => format!(", validation loss {v:.4}"),
        (None, None) => String::new(),
    };
    let phase = if e.refit { "refit on every row, epoch" } else { "epoch" };
    format!(
        "cnn_train: {phase} {}/{}: loss {:.4}{accuracy}{validation}, {:.0} samples/s",
        e.epoch, e.epochs, e.loss, e.samples_per_second
    )
}

impl Shell {
    pub fn new(ctx: SessionContext) -> Self {
        Self {
            ctx,
            format: OutputFormat::Table,
            max_rows: None,
            timing: false,
            quiet: false,
            show_progress: false,
            vars: HashMap::new(),
            pinned: HashSet::new(),
            training: TrainingControl::default(),
            last_result: None,
        }
    }

    /// Sets a variable from the command line (`--set name=value`).
    pub fn pin_var(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_string(), value.to_string());
        self.pinned.insert(name.to_string());
    }

    /// Replaces every `${name}` with the variable's value.
    pub fn substitute(&self, text: &str) -> Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                return Ok(out);
            };
            let name = &after[..end];
            match self.vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return plan_err!(
                        "undefined variable ${{{name}}}: give it with --set {name}=VALUE or \\set {name} VALUE"
                    )
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Runs SQL statements and backslash commands (a command is a line that
    /// starts with `\` where a statement would start). Stops at the first
    /// error; `origin` (a file name) prefixes error locations.
    pub async fn run_text(&mut self, text: &str, origin: Option<&str>) -> Result<Flow> {
        let mut pending = String::new();
        let mut pending_line = 1;
        for (index, line) in text.lines().enumerate() {
            if is_blank_sql(&pending) && line.trim_start().starts_with('\\') {
                if self.run_command(line.trim()).await? == Flow::Quit {
                    return Ok(Flow::Quit);
                }
                pending.clear();
                continue;
            }
            if is_blank_sql(&pending) {
                pending.clear();
                pending_line = index + 1;
            }
            pending.push_str(line);
            pending.push('\n');
            let (statements, (rest_line, rest)) = split_sql(&pending);
            if statements.is_empty() {
                continue;
            }
            for (line, statement) in statements {
                self.run_one(&statement, pending_line + line - 1, origin).await?;
            }
            pending_line += rest_line - 1;
            pending = rest;
        }
        if !is_blank_sql(&pending) {
            self.run_one(pending.trim(), pending_line, origin).await?;
        }
        Ok(Flow::Continue)
    }

    async fn run_one(&mut self, text: &str, line: usize, origin: Option<&str>) -> Result<()> {
        let located = |e: DataFusionError| match origin {
            Some(file) => e.context(format!("{file}:{line}")),
            None => e,
        };
        let text = self.substitute(text).map_err(located)?;
        let statement = parse_statement(&text, line).map_err(located)?;
        let started = Instant::now();
        let rows = Arc::new(AtomicU64::new(0));
        let plan = PlanProgress::default();
        let progress = self
            .show_progress
            .then(|| Progress::start(Arc::clone(&rows), plan.clone()));
        self.training.reset();
        let layout = self.layout();
        let quiet = self.quiet;
        // Rows are written as they arrive (a table when the last one has).
        let result = catching_panics(async {
            let (schema, mut stream) = stream_statement_watched(&self.ctx, &statement, &plan).await?;
            let mut out = std::io::stdout().lock();
            if schema.fields().is_empty() {
                // DDL: a word for people, nothing in machine formats.
                while let Some(batch) = stream.next().await {
                    batch?;
                }
                if !quiet && layout.format == OutputFormat::Table {
                    writeln!(out, "OK")?;
                }
                return Ok(None);
            }
            let mut writer = ResultWriter::new(&mut out, &schema, layout);
            let mut chart = ChartData::new(&schema);
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
                writer.write(&batch)?;
                chart.add(&batch)?;
            }
            writer.finish()?;
            Ok(Some(chart))
        })
        .await;
        drop(progress);
        if let Some(chart) = result.map_err(located)? {
            self.last_result = Some(chart);
        }
        let mut out = std::io::stdout().lock();
        if self.timing {
            writeln!(out, "Time: {:.3} s", started.elapsed().as_secs_f64())?;
        }
        out.flush()?;
        Ok(())
    }

    /// Runs one backslash command line.
    pub async fn run_command(&mut self, line: &str) -> Result<Flow> {
        let command: Command = self.substitute(line)?.parse()?;
        match command {
            Command::Quit => return Ok(Flow::Quit),
            Command::Help => println!("{}", help_text()),
            Command::FunctionHelp(name) => self.help(&name)?,
            Command::ListTables => self.list_tables().await?,
            Command::DescribeTable(name) => self.describe(&name).await?,
            Command::ListFunctions(pattern) => self.list_functions(pattern.as_deref())?,
            Command::ListVariables => {
                let mut names: Vec<_> = self.vars.iter().collect();
                names.sort();
                for (name, value) in names {
                    println!("{name} = {value}");
                }
            }
            Command::SetVariable { name, value } => {
                if !self.pinned.contains(&name) {
                    self.vars.insert(name, value);
                }
            }
            Command::Timing(on) => {
                self.timing = on.unwrap_or(!self.timing);
                println!("Timing is {}.", if self.timing { "on" } else { "off" });
            }
            Command::ShowPrintOptions => println!(
                "format {}\nmaxrows {}",
                self.format,
                self.max_rows.map_or("all".to_string(), |n| n.to_string())
            ),
            Command::SetFormat(format) => self.format = format,
            Command::SetMaxRows(rows) => self.max_rows = rows,
            Command::Chart { column, png } => self.chart(column.as_deref(), png.as_deref())?,
            Command::Include(file) => {
                let text =
                    std::fs::read_to_string(&file).map_err(|e| plan_datafusion_err!("cannot read '{file}': {e}"))?;
                return Box::pin(self.run_text(&text, Some(&file))).await;
            }
        }
        Ok(Flow::Continue)
    }

    fn chart(&self, column: Option<&str>, png: Option<&str>) -> Result<()> {
        let Some(data) = &self.last_result else {
            return plan_err!("\\chart draws the last query's result; run a query first");
        };
        let (labels, values, name) = data.series(column)?;
        let title = if data.dropped > 0 {
            format!("{name} (first {} rows)", labels.len())
        } else {
            name
        };
        match png {
            Some(path) => {
                write_png_chart(Path::new(path), &labels, &values, &title)?;
                println!("wrote {path}");
            }
            None => print!("{}", text_chart(&labels, &values, &title, 50)),
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        Layout {
            format: self.format,
            max_rows: self.max_rows,
            footer: !self.quiet,
        }
    }

    fn print_strings(&self, headers: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
        let schema = Arc::new(Schema::new(
            headers
                .iter()
                .map(|h| Field::new(*h, DataType::Utf8, false))
                .collect::<Vec<_>>(),
        ));
        let columns: Vec<ArrayRef> = (0..headers.len())
            .map(|i| Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r[i].as_str()))) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
        let mut out = std::io::stdout().lock();
        write_results(
            &mut out,
            &schema,
            &[batch],
            Layout {
                max_rows: None,
                ..self.layout()
            },
        )?;
        Ok(())
    }

    /// Every table of the session by name, sorted; `information_schema`
    /// only when `include_system`.
    pub async fn tables(&self, include_system: bool) -> Result<Vec<(String, Arc<dyn TableProvider>)>> {
        let mut tables = Vec::new();
        for catalog_name in self.ctx.catalog_names() {
            let Some(catalog) = self.ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                if schema_name == "information_schema" && !include_system {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table in schema.table_names() {
                    if let Some(provider) = schema.table(&table).await? {
                        tables.push((table, provider));
                    }
                }
            }
        }
        tables.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(tables)
    }

    async fn list_tables(&self) -> Result<()> {
        let rows = self
            .tables(false)
            .await?
            .into_iter()
            .map(|(name, provider)| {
                vec![
                    name,
                    table_kind(provider.as_ref()).to_string(),
                    provider.schema().fields().len().to_string(),
                ]
            })
            .collect();
        self.print_strings(&["table", "kind", "columns"], rows)
    }

    async fn describe(&self, name: &str) -> Result<()> {
        let provider = self
            .ctx
            .table_provider(name)
            .await
            .map_err(|_| plan_datafusion_err!("no table named '{name}' (\\d lists the tables)"))?;
        let rows = provider
            .schema()
            .fields()
            .iter()
            .map(|f| {
                vec![
                    f.name().clone(),
                    type_name(f.data_type()),
                    if f.is_nullable() { "YES" } else { "NO" }.to_string(),
                ]
            })
            .collect();
        self.print_strings(&["column", "type", "nullable"], rows)
    }

    fn list_functions(&self, pattern: Option<&str>) -> Result<()> {
        let pattern = pattern.map(|p| p.to_ascii_lowercase());
        let rows = list_functions(&self.ctx)
            .into_iter()
            .filter(|f| pattern.as_ref().is_none_or(|p| f.name.contains(p.as_str())))
            .map(|f| {
                vec![
                    f.name.clone(),
                    f.kind.as_str().to_string(),
                    if f.rookery { "rookery" } else { "datafusion" }.to_string(),
                    f.summary(100),
                ]
            })
            .collect();
        self.print_strings(&["function", "kind", "from", "description"], rows)
    }

    fn help(&self, name: &str) -> Result<()> {
        let name = name.trim_end_matches(';').to_ascii_lowercase();
        let matches: Vec<_> = list_functions(&self.ctx)
            .into_iter()
            .filter(|f| f.name == name)
            .collect();
        if matches.is_empty() {
            return plan_err!("no function named '{name}' (\\df lists the functions)");
        }
        for info in matches {
            print!("{}", render_help(&info));
        }
        Ok(())
    }
}

fn table_kind(provider: &dyn TableProvider) -> &'static str {
    if provider.downcast_ref::<rookery::images::ImageTable>().is_some() {
        "images"
    } else {
        match provider.table_type() {
            datafusion::logical_expr::TableType::Base => "table",
            datafusion::logical_expr::TableType::View => "view",
            datafusion::logical_expr::TableType::Temporary => "temporary",
        }
    }
}

/// Data type names for `\d`: an image struct is just `image`.
pub fn type_name(data_type: &DataType) -> String {
    if is_image_type(data_type) {
        return "image".to_string();
    }
    match data_type {
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// Progress on stderr for a running statement: silent for the first
/// second, then elapsed time, rows so far and images decoded.
struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(rows: Arc<AtomicU64>, plan: PlanProgress) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut shown = false;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let elapsed = started.elapsed();
                if elapsed < Duration::from_secs(1) || flag.load(Ordering::Relaxed) {
                    continue;
                }
                let counts: ScanCounts = plan.counts();
                eprint!(
                    "\r\x1b[K{:.1} s · {} rows · {} files read · {} images decoded{}  (Ctrl-C cancels)",
                    elapsed.as_secs_f64(),
                    rows.load(Ordering::Relaxed),
                    counts.files_read,
                    counts.images_decoded,
                    resume_progress(&counts, elapsed)
                );
                shown = true;
            }
            if shown {
                eprint!("\r\x1b[K");
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

/// A resumable COPY's part of the progress line: images committed of all,
/// those left and the time they will take.
fn resume_progress(counts: &ScanCounts, elapsed: Duration) -> String {
    match counts.remaining(elapsed) {
        None => String::new(),
        Some((left, estimate)) => format!(
            " · {} of {} images committed ({} from before) · {left} left{}",
            counts.images_committed,
            counts.images_total,
            counts.images_skipped,
            estimate.map_or_else(String::new, |t| format!(", about {:.0} s", t.as_secs_f64()))
        ),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// True when stdin and stderr are terminals (a person is typing).
pub fn is_interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Reads a script file with a clear error naming it.
pub fn read_script(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| plan_datafusion_err!("cannot read '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rookery::functions::list_functions;
    use rookery::session::{new_session, EngineOptions};

    /// Every backslash command, with and without arguments, and `\h` of
    /// every registered function: each answers or fails cleanly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_command_answers() {
        let mut shell = Shell::new(new_session(&EngineOptions::default()).unwrap());
        shell.quiet = true;
        let script = std::env::temp_dir().join(format!("rookery-shell-{}.sql", std::process::id()));
        std::fs::write(&script, "SELECT 1 AS one;\n").unwrap();
        let include = format!("\\i {}", script.display());
        let good = [
            "\\?",
            "\\h",
            "\\h pi",
            "\\h image_tiles",
            "\\d",
            "\\df",
            "\\df p",
            "\\df π",
            "\\set",
            "\\set x 1",
            "\\timing",
            "\\timing off",
            "\\pset",
            "\\pset format csv",
            "\\pset maxrows 5",
            "\\pset maxrows all",
            "\\pset format table",
            include.as_str(),
        ];
        for line in good {
            assert!(shell.run_command(line).await.is_ok(), "{line}");
        }
        let bad = [
            "\\h no_such_function",
            "\\d no_such_table",
            "\\pset format yaml",
            "\\pset maxrows many",
            "\\timing maybe",
            "\\i /no/such/file.sql",
            "\\nonsense",
        ];
        for line in bad {
            assert!(shell.run_command(line).await.is_err(), "{line}");
        }
        assert_eq!(shell.run_command("\\q").await.unwrap(), Flow::Quit);
        for info in list_functions(&shell.ctx) {
            let line = format!("\\h {}", info.name);
            assert!(shell.run_command(&line).await.is_ok(), "{line}");
        }
        std::fs::remove_file(script).ok();
    }
}
