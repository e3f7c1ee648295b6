//! The training rows: labelled (or counted) pixel buffers of one size, and
//! how they are ordered and split into training and validation rows.

use super::*;

/// Labelled training images, all of one size, NHWC bytes.
#[derive(Debug, Default, Clone)]
pub struct Dataset {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<String>,
    /// A count model's data: the names of the counts, and each row's
    /// counts (row-major, one per name). Empty for a classifier's data,
    /// whose rows have `labels` instead.
    pub count_names: Vec<String>,
    pub counts: Vec<f32>,
    /// Each row's group (e.g. the frame a thumbnail was cut from): when
    /// given, validation holds out whole groups. Empty, or one per row.
    pub groups: Vec<String>,
}

impl Dataset {
    pub fn new(height: usize, width: usize, channels: usize) -> Self {
        Self {
            height,
            width,
            channels,
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        match self.count_names.len() {
            0 => self.labels.len(),
            k => self.counts.len() / k,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the rows carry counts (a count model) rather than labels.
    pub fn is_counts(&self) -> bool {
        !self.count_names.is_empty()
    }

    pub(crate) fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    pub fn push(&mut self, pixels: &[u8], label: String) -> Result<()> {
        if self.is_counts() {
            return crate::failed!("cnn_train: rows give a label and counts mixed");
        }
        self.check_pixels(pixels)?;
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label);
        Ok(())
    }

    /// Rows of one data set all have a group or none do.
    fn check_group(&self, group: &Option<String>) -> Result<()> {
        if !self.is_empty() && group.is_some() == self.groups.is_empty() {
            return crate::failed!("cnn_train: a group must be given for every row or for none");
        }
        Ok(())
    }

    fn check_pixels(&self, pixels: &[u8]) -> Result<()> {
        if pixels.len() != self.image_len() {
            return Err(crate::failure!(
                "training image has {} bytes, expected {}x{}x{}",
                pixels.len(),
                self.width,
                self.height,
                self.channels
            ));
        }
        Ok(())
    }

    /// Adds a row of a count model's data: its counts, one per name (the
    /// same names on every row), and its group as [`Self::push_grouped`].
    pub fn push_counts(
        &mut self,
        pixels: &[u8],
        names: &[String],
        counts: &[f32],
        group: Option<String>,
    ) -> Result<()> {
        if !self.labels.is_empty() {
            return crate::failed!("cnn_train: rows give a label and counts mixed");
        }
        if self.count_names.is_empty() {
            self.count_names = names.to_vec();
        } else if self.count_names != names {
            return crate::failed!(
                "cnn_train: counts named {names:?} after {:?}: every row must name the same counts",
                self.count_names
            );
        }
        if let Some(bad) = counts.iter().find(|c| !c.is_finite() || **c < 0.0) {
            return crate::failed!("cnn_train: a count must be a finite number of at least 0, not {bad}");
        }
        self.check_group(&group)?;
        self.check_pixels(pixels)?;
        self.pixels.extend_from_slice(pixels);
        self.counts.extend_from_slice(counts);
        self.groups.extend(group);
        Ok(())
    }

    /// Adds a row with its group; rows of one data set all have a group
    /// or none do.
    pub fn push_grouped(&mut self, pixels: &[u8], label: String, group: Option<String>) -> Result<()> {
        self.check_group(&group)?;
        self.push(pixels, label)?;
        self.groups.extend(group);
        Ok(())
    }

    pub fn append(&mut self, other: Dataset) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        if self.is_empty() && (self.image_len() == 0 || self.image_len() == other.image_len()) {
            *self = other;
            return Ok(());
        }
        if other.image_len() != self.image_len() {
            return Err(crate::failure!("cannot merge training images of different sizes"));
        }
        if self.groups.is_empty() != other.groups.is_empty() {
            return Err(crate::failure!(
                "cnn_train: a group must be given for every row or for none"
            ));
        }
        if self.count_names != other.count_names {
            return crate::failed!("cnn_train: rows give labels and counts mixed, or counts of other names");
        }
        self.pixels.extend(other.pixels);
        self.labels.extend(other.labels);
        self.counts.extend(other.counts);
        self.groups.extend(other.groups);
        Ok(())
    }
}

/// The distinct labels in order, and each row's index among them; `who`
/// (the function) needs at least two.
pub(crate) fn classes_and_targets(who: &str, labels: &[String]) -> Result<(Vec<String>, Vec<usize>)> {
    let classes: Vec<String> = labels.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
    if classes.len() < 2 {
        return crate::invalid!("{who} needs at least two distinct labels, got only {:?}", classes);
    }
    let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let targets = labels.iter().map(|l| index[l.as_str()]).collect();
    Ok((classes, targets))
}

/// Rows `0..targets.len()` in an order fixed by class and content (rows
/// arrive in whatever order a query's partitions deliver them, and a seed
/// must give the same model), shuffled by `seed`, then split into
/// (training, validation) with the last `validation` share held out. The
/// seeded stream comes back too, to go on shuffling with.
pub(crate) fn split_rows(
    targets: &[usize],
    fingerprint: impl Fn(usize) -> u64,
    seed: u64,
    validation: f64,
) -> (Vec<usize>, Vec<usize>, Rng) {
    let n = targets.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_cached_key(|&row| (targets[row], fingerprint(row), row));
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let held_out = if validation > 0.0 && n > 1 {
        (((n as f64) * validation).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let validation_rows = order.split_off(n - held_out);
    (order, validation_rows, rng)
}

/// `rows` (in the seeded order of [`split_rows`]) split by group: the
/// groups, in an order drawn from the seed, go to validation until it
/// holds the `validation` share of the rows (at least one group, never
/// all). Rows keep their order on each side.
pub(crate) fn split_by_group(rows: Vec<usize>, groups: &[String], options: &TrainOptions) -> (Vec<usize>, Vec<usize>) {
    if options.validation <= 0.0 {
        return (rows, Vec::new());
    }
    let mut names: Vec<&str> = groups
        .iter()
        .map(String::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rng = Rng::derive(options.seed, 4, 0);
    for i in (1..names.len()).rev() {
        names.swap(i, rng.below(i + 1));
    }
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for g in groups {
        *sizes.entry(g.as_str()).or_default() += 1;
    }
    let wanted = (rows.len() as f64 * options.validation).round() as usize;
    let mut held: BTreeSet<&str> = BTreeSet::new();
    let mut held_rows = 0;
    for name in names.iter().take(names.len().saturating_sub(1)) {
        if held_rows >= wanted.max(1) {
            break;
        }
        held.insert(name);
        held_rows += sizes[name];
    }
    rows.into_iter().partition(|&r| !held.contains(groups[r].as_str()))
}

/// FNV-1a of some bytes: a row's content fingerprint for [`split_rows`].
pub fn fingerprint_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}
