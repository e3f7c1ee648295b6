//! Running SQL text: split into statements, each planned and run as a
//! stream of batches (or collected), a panic in a query made its error.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::context::SessionContext;
use datafusion::physical_plan::SendableRecordBatchStream;

use crate::progress::PlanProgress;
use datafusion::sql::parser::{DFParserBuilder, Statement};
use futures::{FutureExt, StreamExt};

/// One statement of a script, with where it starts.
#[derive(Debug)]
pub struct ParsedStatement {
    pub statement: Statement,
    /// The statement's source text, without the closing `;`.
    pub text: String,
    /// 1-based line of the script where the statement starts.
    pub line: usize,
}

/// Lexer state of [`split_sql`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lex {
    Code,
    SingleQuote,
    DoubleQuote,
    LineComment,
    BlockComment,
}

/// Splits SQL text at `;` outside strings, quoted names and comments.
/// Returns `(line, text)` per statement, and the trailing `(line, text)`
/// that has no `;` yet (blank when the input is complete).
pub fn split_sql(sql: &str) -> (Vec<(usize, String)>, (usize, String)) {
    let mut statements = Vec::new();
    let mut state = Lex::Code;
    let mut start = 0;
    let mut line = 1;
    let mut start_line = 1;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == b'\n' {
            line += 1;
        }
        match state {
            Lex::Code => match c {
                b'\'' => state = Lex::SingleQuote,
                b'"' => state = Lex::DoubleQuote,
                b'-' if next == Some(b'-') => state = Lex::LineComment,
                b'/' if next == Some(b'*') => {
                    state = Lex::BlockComment;
                    i += 1;
                }
                b';' => {
                    let text = sql[start..i].trim();
                    if !is_blank_sql(text) {
                        statements.push((start_line + leading_lines(&sql[start..i]), text.to_string()));
                    }
                    start = i + 1;
                    start_line = line;
                }
                _ => {}
            },
            Lex::SingleQuote if c == b'\'' => state = Lex::Code,
            Lex::DoubleQuote if c == b'"' => state = Lex::Code,
            Lex::LineComment if c == b'\n' => state = Lex::Code,
            Lex::BlockComment if c == b'*' && next == Some(b'/') => {
                state = Lex::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    let rest = &sql[start..];
    (statements, (start_line + leading_lines(rest), rest.to_string()))
}

/// Lines before the first non-blank character.
fn leading_lines(text: &str) -> usize {
    let trimmed = text.trim_start();
    text[..text.len() - trimmed.len()].matches('\n').count()
}

/// True when `text` holds nothing but whitespace and comments.
pub fn is_blank_sql(text: &str) -> bool {
    let mut rest = text.trim_start();
    loop {
        if rest.is_empty() {
            return true;
        }
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map(|(_, r)| r).unwrap_or("").trim_start();
        } else if let Some(after) = rest.strip_prefix("/*") {
            match after.split_once("*/") {
                Some((_, r)) => rest = r.trim_start(),
                None => return true,
            }
        } else {
            return false;
        }
    }
}

/// Parses one statement's text with DataFusion's parser.
pub fn parse_statement(text: &str, line: usize) -> Result<ParsedStatement> {
    let mut statements = DFParserBuilder::new(text).build()?.parse_statements()?;
    match (statements.pop_front(), statements.is_empty()) {
        (Some(statement), true) => Ok(ParsedStatement {
            statement,
            text: text.to_string(),
            line,
        }),
        (None, _) => plan_err!("empty statement"),
        (Some(_), false) => plan_err!("more than one statement in '{text}'"),
    }
}

/// Results of one statement.
#[derive(Debug)]
pub struct StatementResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl StatementResult {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// The error for a query that panicked, with the panic's message.
pub fn panic_error(payload: &(dyn std::any::Any + Send)) -> DataFusionError {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    DataFusionError::Execution(format!(
        "internal error: the query panicked ({message}); please report it"
    ))
}

/// Runs `work`, turning a panic anywhere in it (DataFusion re-raises those
/// of its tasks where the stream is polled) into this statement's error, so
/// the process goes on.
pub async fn catching_panics<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(panic_error(payload.as_ref())),
    }
}

/// Plans one statement and starts it: the schema of its results and the
/// stream of their batches, to be consumed as they come (inside
/// [`catching_panics`]). DDL and COPY run here too and stream their one
/// row (or none).
pub async fn stream_statement(
    ctx: &SessionContext,
    statement: &ParsedStatement,
) -> Result<(SchemaRef, SendableRecordBatchStream)> {
    stream_statement_watched(ctx, statement, &PlanProgress::default()).await
}

/// [`stream_statement`], with `progress` watching the statement's plan.
pub async fn stream_statement_watched(
    ctx: &SessionContext,
    statement: &ParsedStatement,
    progress: &PlanProgress,
) -> Result<(SchemaRef, SendableRecordBatchStream)> {
    let state = ctx.state();
    let plan = state.statement_to_plan(statement.statement.clone()).await?;
    let frame = ctx.execute_logical_plan(plan).await?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    Ok((schema, progress.execute(frame).await?))
}

/// Runs one statement to completion, collecting its batches.
pub async fn run_statement(ctx: &SessionContext, statement: &ParsedStatement) -> Result<StatementResult> {
    catching_panics(async {
        let (schema, mut stream) = stream_statement(ctx, statement).await?;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() > 0 {
                batches.push(batch);
            }
        }
        Ok(StatementResult { schema, batches })
    })
    .await
}

/// Every statement of complete SQL text, `(line, text)`: a trailing one
/// without `;` counts too.
pub fn all_statements(sql: &str) -> Vec<(usize, String)> {
    let (mut statements, (rest_line, rest)) = split_sql(sql);
    if !is_blank_sql(&rest) {
        statements.push((rest_line, rest.trim().to_string()));
    }
    statements
}

/// Runs every statement of `sql` in order, stopping at the first error; a
/// trailing statement without `;` runs too.
pub async fn run_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<StatementResult>> {
    let mut results = Vec::new();
    for (line, text) in all_statements(sql) {
        let statement = parse_statement(&text, line)?;
        results.push(run_statement(ctx, &statement).await?);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "SELECT ';' AS a; -- c;\n/* x; */ SELECT \"b;\" FROM t;\n\nSELECT 3";
        let (statements, rest) = split_sql(sql);
        assert_eq!(statements.len(), 2);
        assert_eq!(statements[0], (1, "SELECT ';' AS a".to_string()));
        assert_eq!(statements[1].1, "-- c;\n/* x; */ SELECT \"b;\" FROM t");
        assert_eq!((rest.0, rest.1.trim()), (4, "SELECT 3"));
        assert!(is_blank_sql(" -- only a comment\n /* and */ "));
        assert!(!is_blank_sql("-- c\nSELECT 1"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_query_is_an_error() {
        use datafusion::arrow::datatypes::DataType;
        use datafusion::logical_expr::{create_udf, ColumnarValue, Volatility};
        let ctx = crate::new_session(&crate::EngineOptions::default()).unwrap();
        let boom = create_udf(
            "boom",
            vec![DataType::Int64],
            DataType::Int64,
            Volatility::Volatile,
            Arc::new(|_: &[ColumnarValue]| -> Result<ColumnarValue> { panic!("boom at row 1") }),
        );
        ctx.register_udf(boom);
        let err = run_sql(&ctx, "SELECT boom(v) FROM (VALUES (1), (2)) AS t(v)")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the query panicked (boom at row 1)"), "{err}");
        // The session goes on.
        assert_eq!(run_sql(&ctx, "SELECT 1").await.unwrap()[0].row_count(), 1);
    }

    #[test]
    fn statement_lines() {
        let (statements, _) = split_sql("SELECT 1;\n\n  SELECT\n 2;");
        assert_eq!(statements[1].0, 3);
    }
}
