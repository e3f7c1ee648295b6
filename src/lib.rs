//! Rookery: SQL over image folders and label files, on Apache DataFusion.
//!
//! The engine library; the `rookery` command (REPL, scripts, `demo`,
//! `classify`, `serve`) is the crate `rookery-cli` built on it.
//!
//! - [`register`]: every table factory, file format, table function, image
//!   function, `rookery.*`/`images.*` setting and optimizer rule added to a
//!   `SessionStateBuilder`; [`new_session`] builds a session with them;
//! - [`images`]: image folders as tables (`STORED AS IMAGES`, `images()`,
//!   `image_tiles()`) and `COPY ... STORED AS IMAGES`;
//! - [`exec`]: running SQL text statement by statement, as streams, and
//!   [`progress`]: what a running plan's scans have done;
//! - [`resume`]: COPYs that commit as they go and resume after a stop;
//! - [`stores`]: `s3://`, `gs://`, `az://`, `http(s)://` locations, from
//!   the environment or a table's `aws.*`-style options;
//! - [`display`]: values as compact text (`<image 4992x3328x3>`);
//! - [`functions`]: what the functions' documentation says, for `\\df`/`\\h`;
//! - [`sealions`], [`frames`]: the data generators (crate `rookery-gen`).

pub mod atomic_copy;
pub mod cluster;
pub mod display;
pub mod exec;
pub mod functions;
pub mod images;
pub mod pass_through;
pub mod progress;
pub mod read_blob;
pub mod resume;
pub mod session;
pub mod stores;
pub mod tsv;
pub mod video;
pub mod workflows;

/// The data generators (crate `rookery-gen`), where they always were.
pub use rookery_gen::{frames, sealions};
pub use session::{new_session, register, register_with_training, EngineOptions};
