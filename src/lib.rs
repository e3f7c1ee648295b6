//! Rookery: SQL over image folders and label files, on Apache DataFusion.
//!
//! - [`images`]: image folders as tables (`STORED AS IMAGES`, `images()`);
//! - [`session`]: a DataFusion session with Rookery's tables and functions;
//! - [`exec`]: running SQL scripts statement by statement;
//! - [`shell`] and [`repl`]: the command line and the interactive REPL;
//! - [`display`]: results as tables, CSV or JSON, with compact image cells;
//! - [`sealions`], [`frames`]: the data generators (crate `rookery-gen`);
//! - [`demo`]: the sea-lion pipeline end to end (`rookery demo`);
//! - [`classify`]: `rookery classify`, a model on image files;
//! - [`serve`]: `rookery serve`, a model and SQL behind HTTP;
//! - [`register`]: everything above added to a `SessionStateBuilder`.

pub mod atomic_copy;
pub mod classify;
pub mod command;
pub mod demo;
pub mod display;
pub mod exec;
pub mod functions;
pub mod images;
pub mod pass_through;
pub mod read_blob;
pub mod repl;
pub mod serve;
pub mod session;
pub mod shell;
pub mod tsv;

/// The data generators (crate `rookery-gen`), where they always were.
pub use rookery_gen::{frames, sealions};
pub use session::{new_session, register, register_with_training, EngineOptions};
