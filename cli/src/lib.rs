//! The `rookery` command over the engine library: the REPL and scripts
//! ([`shell`], [`repl`], one [`command::Command`] list), result output on
//! Arrow's CSV and JSON writers ([`output`]), `rookery demo`, `rookery
//! classify`, `rookery serve` and the [`workflows`] (`augment`, `train`,
//! `crops`), and the command line itself ([`subcommands`]: one `clap::Args`
//! struct and `run` per subcommand). Nothing here is needed by a query: every
//! feature runs through `SessionContext::sql` on a session made by
//! `rookery::register`.

pub mod chart;
pub mod classify;
pub mod command;
pub mod demo;
pub mod output;
pub mod repl;
pub mod serve;
pub mod shell;
pub mod subcommands;
pub mod workflows;

/// Asks the global allocator (mimalloc, in the `rookery` binary) to keep
/// freed memory for a second before returning it to the system: training
/// frees and re-allocates tensors of tens of megabytes every step, and
/// mimalloc's default 10 ms meant zeroing fresh pages for a quarter of the
/// time (measured with perf). Without mimalloc as the allocator this only
/// sets an option nobody reads.
pub fn tune_allocator() {
    // mi_option_purge_delay: the same position (15) in mimalloc v2 and v3.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 1000) };
}
