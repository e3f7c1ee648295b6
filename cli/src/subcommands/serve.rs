//! `rookery serve`: the HTTP server.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::common::{plan_err, DataFusionError, Result};
use rookery_image::options::OptionSet;
use rookery_models::runtime::{threads_per_session, Classifier, ClassifyOptions, ModelOutput};
use rookery_udfs::functions::model_rows::SqlResult;

use super::classify::{model_file, with_provider};
use super::{parse_size, Engine, GlobalArgs};
use crate::serve::{serve_until_ctrl_c, Access, App, ServeLimits};
use crate::shell::read_script;
use rookery_image::ExecutionProviders;

/// Serve over HTTP: POST an image file to /classify for {"label",
/// "scores"} as JSON (with --model), POST SQL to /sql for its rows
/// (CSV, JSON or Arrow by Accept), GET /health. Ctrl-C stops it
/// gracefully.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// SQL scripts to run first, in the server's session (to define
    /// tables); may repeat.
    #[arg(long = "init")]
    pub init: Vec<PathBuf>,
    /// The .onnx model for /classify: a path or a URL (s3://bucket/m.onnx).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Model options, as for cnn_classify.
    #[arg(long, default_value = "")]
    pub options: String,
    /// Where ONNX Runtime runs models, for /classify and as the SQL
    /// session's rookery.execution_provider: cpu, cuda, cuda:N, tensorrt,
    /// or a list in order of preference (cuda|cpu).
    #[arg(long, value_name = "PROVIDERS")]
    pub execution_provider: Option<ExecutionProviders>,
    /// Connections open at once (more wait in the listen queue).
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Requests working at once (default: one per core).
    #[arg(long)]
    pub max_requests: Option<usize>,
    /// Largest request body, e.g. 64M (413 above it).
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub max_body: usize,
    /// Seconds a client has to send its headers (and an idle
    /// keep-alive connection stays open).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a request may take (408 after).
    #[arg(long, default_value_t = 120)]
    pub request_timeout: u64,
    /// Seconds a client has to send a request's body (408 after).
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Largest /sql result, e.g. 256M (413 above it: add a LIMIT).
    #[arg(long, value_parser = parse_size, default_value = "256M")]
    pub max_result: usize,
    /// Turn /sql on: read-only statements over the --table tables
    /// (and those --init made), with the token.
    #[arg(long)]
    pub sql: bool,
    /// Let /sql write and reach anything this process can: COPY, DDL,
    /// SET, images() of any folder, read_blob of any location,
    /// cnn_train. Implies --sql.
    #[arg(long)]
    pub sql_writes: bool,
    /// A table for /sql: NAME=LOCATION (an image folder, or a .csv,
    /// .tsv or .parquet file); may repeat. read_blob reads only under
    /// these locations unless --sql-writes.
    #[arg(long = "table", value_name = "NAME=LOCATION", value_parser = parse_table)]
    pub tables: Vec<(String, String)>,
    /// The token clients send as 'Authorization: Bearer TOKEN' (default:
    /// a random one, printed at start). Also read from
    /// $ROOKERY_SERVE_TOKEN, which keeps it out of the process list.
    #[arg(long)]
    pub token: Option<String>,
    /// A host name accepted in the Host header besides IP addresses and
    /// localhost (a name clients use for this machine); may repeat.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
}

impl ServeArgs {
    pub fn run(self, global: &GlobalArgs) -> Result<()> {
        let engine = Engine::start(global)?;
        let mut shell = engine.shell(global)?;
        if let Some(provider) = &self.execution_provider {
            let state = shell.ctx.state_ref();
            let mut state = state.write();
            state
                .config_mut()
                .options_mut()
                .set("rookery.execution_provider", &provider.to_string())?;
        }
        let classifier = match &self.model {
            Some(model) => {
                let options = ClassifyOptions::parse(&with_provider(&self.options, self.execution_provider.as_ref()))?;
                // Requests run side by side: one ONNX Runtime thread per core each may use.
                let threads = threads_per_session(engine.partitions);
                let loaded = Classifier::load(&model_file(model)?, &options, &ModelOutput::Classes, threads).sql()?;
                Some(Arc::new(loaded))
            }
            None => None,
        };
        let defaults = ServeLimits::default();
        let limits = ServeLimits {
            max_connections: self.max_connections,
            max_requests: self.max_requests.unwrap_or(defaults.max_requests),
            max_body: self.max_body,
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            request_timeout: std::time::Duration::from_secs(self.request_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            max_result: self.max_result,
            ..defaults
        };
        let given = self.token.clone().or_else(|| std::env::var("ROOKERY_SERVE_TOKEN").ok());
        let generated = given.is_none();
        let token = match given {
            Some(given) if given.trim().is_empty() => return plan_err!("the serve token may not be empty"),
            Some(given) => given,
            None => crate::serve::generate_token()?,
        };
        let access = Access {
            token: Some(token.clone()),
            sql: self.sql || self.sql_writes,
            sql_writes: self.sql_writes,
            readable: self.tables.iter().map(|(_, location)| location.clone()).collect(),
            allowed_hosts: self.allowed_hosts.clone(),
        };
        engine.runtime.block_on(async {
            for (name, location) in &self.tables {
                rookery::exec::run_sql(&shell.ctx, &table_statement(name, location))
                    .await
                    .map_err(|e| DataFusionError::Plan(format!("--table {name}={location}: {e}")))?;
            }
            for file in &self.init {
                let text = read_script(file)?;
                shell.run_text(&text, Some(&file.display().to_string())).await?;
            }
            let what = match (classifier.is_some(), access.sql, access.sql_writes) {
                (true, true, false) => "POST an image to /classify, read-only SQL to /sql",
                (true, true, true) => "POST an image to /classify, SQL to /sql (writes allowed)",
                (true, false, _) => "POST an image to /classify; /sql is off (--sql)",
                (false, true, false) => "POST read-only SQL to /sql",
                (false, true, true) => "POST SQL to /sql (writes allowed)",
                (false, false, _) => "no /classify (--model) and no /sql (--sql): only /health",
            };
            let app = Arc::new(App::new(shell.ctx.clone(), classifier, limits, access)?);
            serve_until_ctrl_c(app, &self.addr, |bound| {
                eprintln!("rookery serve: listening on http://{bound} ({what})");
                // A generated token is shown once, as Jupyter does; a given
                // one the user has already.
                if generated {
                    eprintln!("rookery serve: send 'Authorization: Bearer {token}' with each request");
                } else {
                    eprintln!("rookery serve: send 'Authorization: Bearer' and the token you gave with each request");
                }
            })
            .await
        })
    }
}

/// `--table NAME=LOCATION`.
fn parse_table(text: &str) -> std::result::Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, location)) if !name.trim().is_empty() && !location.trim().is_empty() => {
            Ok((name.trim().to_string(), location.trim().to_string()))
        }
        _ => Err(format!("'{text}' is not NAME=LOCATION")),
    }
}

/// The statement that makes a `--table`: by the location's extension a
/// CSV, TSV or Parquet table, else an image folder.
fn table_statement(name: &str, location: &str) -> String {
    let lower = location.to_ascii_lowercase();
    let (format, options) = if lower.ends_with(".csv") {
        ("CSV", " OPTIONS ('format.has_header' 'true')")
    } else if lower.ends_with(".tsv") {
        ("TSV", "")
    } else if lower.ends_with(".parquet") {
        ("PARQUET", "")
    } else {
        ("IMAGES", "")
    };
    let quoted_name = name.replace('"', "\"\"");
    let quoted_location = location.replace('\'', "''");
    format!("CREATE EXTERNAL TABLE \"{quoted_name}\" STORED AS {format} LOCATION '{quoted_location}'{options}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_the_command_line() {
        assert_eq!(
            parse_table("frames = data/x/").unwrap(),
            ("frames".to_string(), "data/x/".to_string())
        );
        for bad in ["frames", "=data/", "frames="] {
            assert!(parse_table(bad).is_err(), "{bad}");
        }
        assert_eq!(
            table_statement("t", "labels.CSV"),
            "CREATE EXTERNAL TABLE \"t\" STORED AS CSV LOCATION 'labels.CSV' OPTIONS ('format.has_header' 'true')"
        );
        // Names and locations are quoted, so neither can end the statement.
        assert_eq!(
            table_statement("o\"k", "it's/"),
            "CREATE EXTERNAL TABLE \"o\"\"k\" STORED AS IMAGES LOCATION 'it''s/'"
        );
    }
}
