//! The interactive REPL: rustyline editing, history and completion over
//! the [`Shell`].

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use datafusion::common::Result;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::FileHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, Helper};
use tokio::runtime::Runtime;

use crate::command::completion_words;
use crate::shell::{Flow, Shell};
use rookery::exec::{is_blank_sql, split_sql};
use rookery::functions::list_functions;
use rookery_models::control::TrainingControl;

const PROMPT: &str = "rookery> ";
const CONTINUATION_PROMPT: &str = "      -> ";

/// The history file: `$ROOKERY_HISTORY`, else `~/.rookery_history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ROOKERY_HISTORY") {
        return Some(PathBuf::from(path));
    }
    dirs::home_dir().map(|home| home.join(".rookery_history"))
}

/// Completes SQL keywords, backslash commands, and the names of tables,
/// columns and functions (Rookery's own included) of the session.
pub struct SqlCompleter {
    names: Arc<RwLock<BTreeSet<String>>>,
}

impl SqlCompleter {
    fn candidates(&self, word: &str) -> Vec<Pair> {
        let lower = word.to_ascii_lowercase();
        let upper_case = word.chars().any(|c| c.is_ascii_uppercase()) && !word.chars().any(|c| c.is_ascii_lowercase());
        let mut out: Vec<Pair> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut add = |candidate: String| {
            if seen.insert(candidate.clone()) {
                out.push(Pair {
                    display: candidate.clone(),
                    replacement: candidate,
                });
            }
        };
        if let Ok(names) = self.names.read() {
            for name in names.iter().filter(|n| n.to_ascii_lowercase().starts_with(&lower)) {
                add(name.clone());
            }
        }
        for keyword in ALL_KEYWORDS
            .iter()
            .filter(|k| k.to_ascii_lowercase().starts_with(&lower))
        {
            add(if upper_case {
                keyword.to_string()
            } else {
                keyword.to_ascii_lowercase()
            });
        }
        for command in completion_words().filter(|c| c.starts_with(word)) {
            add(command.to_string());
        }
        out
    }
}

/// Start of the word that ends at `pos`.
fn word_start(line: &str, pos: usize) -> usize {
    line[..pos]
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\\'))
        .map(|i| i + 1)
        .unwrap_or(0)
}

impl Completer for SqlCompleter {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = word_start(line, pos);
        let word = &line[start..pos];
        if word.is_empty() {
            return Ok((pos, Vec::new()));
        }
        Ok((start, self.candidates(word)))
    }
}

impl Hinter for SqlCompleter {
    type Hint = String;
}
impl Highlighter for SqlCompleter {}
impl Validator for SqlCompleter {}
impl Helper for SqlCompleter {}

/// Reloads the names the completer offers (tables change with DDL).
async fn refresh_names(shell: &Shell, names: &RwLock<BTreeSet<String>>) {
    let mut fresh: BTreeSet<String> = list_functions(&shell.ctx).into_iter().map(|f| f.name).collect();
    // A table that cannot be opened just offers no names.
    for (table, provider) in shell.tables(true).await.unwrap_or_default() {
        fresh.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
        fresh.insert(table);
    }
    if let Ok(mut names) = names.write() {
        *names = fresh;
    }
}

/// Runs the REPL until `\q` or Ctrl-D. Errors are printed and the REPL goes
/// on; Ctrl-C cancels the running statement (or clears the input).
pub fn run_repl(runtime: &Runtime, shell: &mut Shell) -> Result<()> {
    let interactive = std::io::stdin().is_terminal();
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .max_history_size(10_000)
        .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?
        .build();
    let mut editor: Editor<SqlCompleter, FileHistory> =
        Editor::with_config(config).map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
    let names = Arc::new(RwLock::new(BTreeSet::new()));
    editor.set_helper(Some(SqlCompleter {
        names: Arc::clone(&names),
    }));
    let history = history_path();
    if let Some(path) = &history {
        // A missing history file is normal on first start.
        let _ = editor.load_history(path);
    }
    if interactive {
        println!(
            "Rookery {}: SQL over images. \\? for help, \\q to quit.",
            env!("CARGO_PKG_VERSION")
        );
    }
    runtime.block_on(refresh_names(shell, &names));

    let mut buffer = String::new();
    loop {
        let prompt = if is_blank_sql(&buffer) {
            PROMPT
        } else {
            CONTINUATION_PROMPT
        };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("Error: {e}");
                break;
            }
        };
        if is_blank_sql(&buffer) && line.trim_start().starts_with('\\') {
            let _ = editor.add_history_entry(line.trim());
            buffer.clear();
            match runtime.block_on(cancellable(shell.training.clone(), shell.run_command(line.trim()))) {
                Ok(Flow::Quit) => break,
                Ok(Flow::Continue) => {}
                Err(e) => eprintln!("Error: {e}"),
            }
            runtime.block_on(refresh_names(shell, &names));
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        let (statements, (_, rest)) = split_sql(&buffer);
        if statements.is_empty() {
            continue;
        }
        // Run what is complete; a started statement after the last `;` waits.
        let text = buffer[..buffer.len() - rest.len()].to_string();
        buffer = if is_blank_sql(&rest) { String::new() } else { rest };
        // Credentials typed in OPTIONS never reach the history file.
        let _ = editor.add_history_entry(rookery::stores::redact_secrets(text.trim()));
        if let Err(e) = runtime.block_on(cancellable(shell.training.clone(), shell.run_text(&text, None))) {
            eprintln!("Error: {e}");
        }
        runtime.block_on(refresh_names(shell, &names));
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            eprintln!("Warning: cannot save history to {}: {e}", path.display());
        }
    }
    Ok(())
}

/// Runs `work` until it ends or Ctrl-C is pressed; dropping the future
/// cancels the query's streams, and the training control stops a
/// `cnn_train` that is busy computing (from a task of its own, which runs
/// even while training holds the thread that polls `work`).
async fn cancellable<T>(control: TrainingControl, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let listener = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            control.cancel();
        }
    });
    let result = tokio::select! {
        result = work => result,
        _ = tokio::signal::ctrl_c() => {
            datafusion::common::exec_err!("cancelled (Ctrl-C)")
        }
    };
    listener.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_names_keywords_and_commands() {
        let names = Arc::new(RwLock::new(BTreeSet::from([
            "images".to_string(),
            "train".to_string(),
            "width".to_string(),
        ])));
        let completer = SqlCompleter { names };
        let replacements = |word: &str| {
            completer
                .candidates(word)
                .into_iter()
                .map(|p| p.replacement)
                .collect::<Vec<_>>()
        };
        assert!(replacements("ima").contains(&"images".to_string()));
        assert!(replacements("SEL").contains(&"SELECT".to_string()));
        assert!(replacements("sel").contains(&"select".to_string()));
        assert!(replacements("wid").contains(&"width".to_string()));
        assert_eq!(replacements("\\d"), vec!["\\d".to_string(), "\\df".to_string()]);
        assert_eq!(replacements("\\se"), vec!["\\set".to_string()]);
        assert_eq!(word_start("SELECT na", 9), 7);
    }
}
