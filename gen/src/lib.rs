//! Data generators for Rookery, a layer of their own (they know nothing of
//! the engine): `gen-sealions`, a set with the shape of the Steller
//! sea-lion competition's (frames, dotted copies, `train.csv`, the truth),
//! and `gen-frames`, a labelled folder of frames. The same seed gives the
//! same bytes.

pub mod frames;
pub mod sealions;
