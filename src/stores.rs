//! Object stores: `s3://`, `gs://`, `az://` (and `abfs[s]://`, `adl://`,
//! `azure://`) and `http(s)://` locations work wherever a local path does:
//! image tables and globs, label files, `COPY ... TO`, `read_blob` and
//! model files.
//!
//! Configured as datafusion-cli does: a bucket's store is built from the
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, ...; `GOOGLE_*`;
//! `AZURE_*`) the first time a query touches it, or from the options of the
//! `CREATE EXTERNAL TABLE` naming it (`'aws.region' 'eu-west-1'`,
//! `'aws.endpoint' 'http://127.0.0.1:9000'`, `'aws.allow_http' 'true'`,
//! ...), which then hold for every later use of that bucket in the session.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::logical_expr::CreateExternalTable;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreScheme};
use url::Url;

/// The kinds of store a location may name, with the table-option prefix
/// that configures each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    S3,
    Google,
    Azure,
    Http,
}

impl StoreKind {
    /// The kind of store `url` names, `None` for local and in-memory ones.
    fn of(url: &Url) -> Option<Self> {
        match ObjectStoreScheme::parse(url).ok()?.0 {
            ObjectStoreScheme::AmazonS3 => Some(Self::S3),
            ObjectStoreScheme::GoogleCloudStorage => Some(Self::Google),
            ObjectStoreScheme::MicrosoftAzure => Some(Self::Azure),
            ObjectStoreScheme::Http => Some(Self::Http),
            _ => None,
        }
    }

    fn option_prefix(self) -> &'static str {
        match self {
            Self::S3 => "aws.",
            Self::Google => "gcp.",
            Self::Azure => "azure.",
            Self::Http => "http.",
        }
    }
}

/// The prefixes of the table options that configure stores.
const OPTION_PREFIXES: [&str; 4] = ["aws.", "gcp.", "azure.", "http."];

/// Builds the store for the bucket (container, host) of `url` from the
/// environment and `options` (keys without their `aws.`-style prefix, as
/// object_store names them: `region`, `endpoint`, `allow_http`, ...).
pub fn build_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let location = bucket_url(url);
    let Some(kind) = StoreKind::of(url) else {
        return plan_err!("{location} is not an object store location (s3://, gs://, az://, http(s)://)");
    };
    let bad_key = |key: &str| plan_datafusion_err!("unknown option '{}{key}' for {location}", kind.option_prefix());
    let failed = |e: object_store::Error| DataFusionError::Plan(format!("cannot use {location}: {e}"));
    let store: Arc<dyn ObjectStore> = match kind {
        StoreKind::S3 => {
            let mut builder = configure(
                AmazonS3Builder::from_env().with_url(url.as_str()),
                options,
                bad_key,
                |b: AmazonS3Builder, k: AmazonS3ConfigKey, v| b.with_config(k, v),
            )?;
            let has = |key| builder.get_config_value(&key).is_some_and(|v| !v.is_empty());
            // Without a region object_store would sign for us-east-1 and
            // AWS would answer with a redirect: say what to set instead.
            // An S3-compatible server at an endpoint ignores the region.
            if !has(AmazonS3ConfigKey::Region) && !has(AmazonS3ConfigKey::DefaultRegion) {
                if !has(AmazonS3ConfigKey::Endpoint) {
                    return plan_err!(
                        "no AWS region for {location}: set AWS_REGION, or the table option 'aws.region' \
                         (or an endpoint, AWS_ENDPOINT or 'aws.endpoint', for an S3-compatible server)"
                    );
                }
                builder = builder.with_region("us-east-1");
            }
            Arc::new(builder.build().map_err(failed)?)
        }
        StoreKind::Google => {
            let builder = configure(
                GoogleCloudStorageBuilder::from_env().with_url(url.as_str()),
                options,
                bad_key,
                |b: GoogleCloudStorageBuilder, k: GoogleConfigKey, v| b.with_config(k, v),
            )?;
            Arc::new(builder.build().map_err(failed)?)
        }
        StoreKind::Azure => {
            let builder = configure(
                MicrosoftAzureBuilder::from_env().with_url(url.as_str()),
                options,
                bad_key,
                |b: MicrosoftAzureBuilder, k: AzureConfigKey, v| b.with_config(k, v),
            )?;
            Arc::new(builder.build().map_err(failed)?)
        }
        StoreKind::Http => {
            let builder = configure(
                HttpBuilder::new().with_url(&url[..url::Position::BeforePath]),
                options,
                bad_key,
                |b: HttpBuilder, k: ClientConfigKey, v| b.with_config(k, v),
            )?;
            Arc::new(builder.build().map_err(failed)?)
        }
    };
    Ok(store)
}

/// A table location as DataFusion's `ListingTableUrl`, with globs in
/// object store URLs too (`s3://bucket/frames/*.jpg`): DataFusion's own
/// parser takes globs in local paths only.
pub fn table_url(location: &str) -> Result<ListingTableUrl> {
    let remote = Url::parse(location).is_ok_and(|u| u.scheme().len() > 1 && u.scheme() != "file");
    if let (true, Some(host_at)) = (remote, location.find("://").map(|i| i + 3)) {
        let path_at = location[host_at..]
            .find('/')
            .map_or(location.len(), |i| host_at + i + 1);
        if let Some(glob_at) = location[path_at..].find(['*', '?', '[']).map(|i| path_at + i) {
            let split = location[..glob_at].rfind('/').map_or(path_at, |i| i + 1);
            let (prefix, glob) = location.split_at(split);
            return ListingTableUrl::parse(prefix)?.with_glob(glob);
        }
    }
    ListingTableUrl::parse(location)
}

/// `builder` with every option set, each key parsed as object_store's
/// key type `K`; a key it does not know is an error made by `unknown`.
fn configure<B, K: std::str::FromStr>(
    builder: B,
    options: &HashMap<String, String>,
    unknown: impl Fn(&str) -> DataFusionError,
    set: impl Fn(B, K, &str) -> B,
) -> Result<B> {
    options.iter().try_fold(builder, |builder, (key, value)| {
        let parsed = key.parse::<K>().map_err(|_| unknown(key))?;
        Ok(set(builder, parsed, value))
    })
}

/// `scheme://bucket/` of a location, the unit a store serves, for messages.
fn bucket_url(url: &Url) -> String {
    format!(
        "{}://{}/",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

/// A registry that builds a bucket's store from the environment the first
/// time it is asked for one, and keeps it; stores registered before (by a
/// table's options, or by the application) win.
pub struct ObjectStoresFromEnv {
    inner: Arc<dyn ObjectStoreRegistry>,
}

impl ObjectStoresFromEnv {
    /// Wraps `inner`, where stores are kept.
    pub fn new(inner: Arc<dyn ObjectStoreRegistry>) -> Self {
        Self { inner }
    }
}

impl Default for ObjectStoresFromEnv {
    fn default() -> Self {
        Self::new(Arc::new(DefaultObjectStoreRegistry::new()))
    }
}

impl fmt::Debug for ObjectStoresFromEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoresFromEnv")
            .field("inner", &self.inner)
            .finish()
    }
}

impl ObjectStoreRegistry for ObjectStoresFromEnv {
    fn register_store(&self, url: &Url, store: Arc<dyn ObjectStore>) -> Option<Arc<dyn ObjectStore>> {
        self.inner.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.inner.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.inner.get_store(url) {
            Ok(store) => Ok(store),
            Err(missing) => {
                if StoreKind::of(url).is_none() {
                    return Err(missing);
                }
                let store = build_store(url, &HashMap::new())?;
                // Two first uses at once build two equal stores; keep the first.
                self.inner.register_store(url, Arc::clone(&store));
                self.inner.get_store(url)
            }
        }
    }
}

/// The locations a table's store options configure, and the options
/// without their prefix.
type StoreOptions = (Vec<Url>, HashMap<String, String>);

/// The store options among a table's options, taken out of them, with
/// their prefix removed, and the locations they configure. Options for
/// another kind of store than the locations' are an error.
fn take_store_options(locations: &[String], options: &mut HashMap<String, String>) -> Result<Option<StoreOptions>> {
    let keys: Vec<String> = options
        .keys()
        .filter(|k| OPTION_PREFIXES.iter().any(|p| k.starts_with(p)))
        .cloned()
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let mut urls = Vec::new();
    for location in locations {
        let url = Url::parse(location).ok().filter(|u| StoreKind::of(u).is_some());
        let Some(url) = url else {
            return plan_err!(
                "option '{}' configures an object store, but the location '{location}' is not in one",
                keys[0]
            );
        };
        urls.push(url);
    }
    let mut store_options = HashMap::new();
    for key in keys {
        let value = options.remove(&key).unwrap_or_default();
        for url in &urls {
            let prefix = StoreKind::of(url).map_or("", StoreKind::option_prefix);
            let Some(name) = key.strip_prefix(prefix) else {
                return plan_err!("option '{key}' does not apply to {}", bucket_url(url));
            };
            store_options.insert(name.to_string(), value.clone());
        }
    }
    Ok(Some((urls, store_options)))
}

/// A table factory that first registers the store a `CREATE EXTERNAL
/// TABLE`'s options configure (`'aws.region'`, `'aws.endpoint'`, ...) for
/// its location's bucket, then lets `inner` make the table without them.
/// The file that object_store's `LocalFileSystem` (rooted at `/`, as
/// DataFusion registers it for `file://`) uses for `location`, mapped the
/// same way: the image scan reads such files directly, and a staged COPY
/// moves them.
pub fn local_file(location: &object_store::path::Path) -> Option<std::path::PathBuf> {
    let mut url = Url::parse("file:///").ok()?;
    url.path_segments_mut().ok()?.pop_if_empty().extend(location.parts());
    url.to_file_path().ok()
}

/// Whether a store option's value is a credential: keys, secrets,
/// tokens, passwords and signatures (an access key's id is not).
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let name = key.rsplit('.').next().unwrap_or(&key);
    !name.ends_with("key_id")
        && ["secret", "token", "password", "key", "sas", "signature", "credential"]
            .iter()
            .any(|word| name.contains(word))
}

/// `sql` with the value of every credential option (`'aws.secret_access_key'
/// 'abc'` and the like) replaced by `'***'`: for history files, table
/// definitions and messages.
pub fn redact_secrets(sql: &str) -> String {
    // The single-quoted literals of the text, as (start, end) byte ranges.
    let bytes = sql.as_bytes();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            let start = i;
            i += 1;
            while i < bytes.len() {
                if bytes[i] == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            literals.push((start, (i + 1).min(bytes.len())));
        }
        i += 1;
    }
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for pair in literals.windows(2) {
        let ((key_start, key_end), (value_start, value_end)) = (pair[0], pair[1]);
        let key = sql[key_start + 1..key_end.saturating_sub(1).max(key_start + 1)].trim();
        let between = &sql[key_end..value_start];
        let is_store_key = OPTION_PREFIXES.iter().any(|p| key.to_ascii_lowercase().starts_with(p));
        if is_store_key && is_secret_option(key) && between.trim().is_empty() && value_start >= copied {
            out.push_str(&sql[copied..value_start]);
            out.push_str("'***'");
            copied = value_end;
        }
    }
    out.push_str(&sql[copied..]);
    out
}

#[derive(Debug)]
pub struct WithStoreOptions {
    inner: Arc<dyn TableProviderFactory>,
}

impl WithStoreOptions {
    pub fn new(inner: Arc<dyn TableProviderFactory>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl TableProviderFactory for WithStoreOptions {
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
        let mut options = cmd.options.clone();
        let Some((urls, store_options)) = take_store_options(&cmd.locations, &mut options)? else {
            return self.inner.create(state, cmd).await;
        };
        for url in urls {
            let store = build_store(&url, &store_options)?;
            state.runtime_env().register_object_store(&url, store);
        }
        let mut cmd = cmd.clone();
        cmd.options = options;
        // The table keeps its definition for SHOW CREATE TABLE and
        // information_schema.views: never with the credentials in it.
        cmd.definition = cmd.definition.as_deref().map(redact_secrets);
        self.inner.create(state, &cmd).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn builds_s3_with_an_endpoint_and_names_a_missing_region() {
        let url = Url::parse("s3://bucket/frames/").unwrap();
        let with_endpoint = options(&[("endpoint", "http://127.0.0.1:1"), ("allow_http", "true")]);
        build_store(&url, &with_endpoint).unwrap();
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            let err = build_store(&url, &HashMap::new()).unwrap_err().to_string();
            assert!(err.contains("no AWS region for s3://bucket/"), "{err}");
        }
        let err = build_store(&url, &options(&[("regoin", "x")])).unwrap_err().to_string();
        assert!(err.contains("unknown option 'aws.regoin' for s3://bucket/"), "{err}");
    }

    #[test]
    fn takes_store_options_out_of_table_options() {
        let mut table = options(&[("aws.region", "eu-west-1"), ("format.has_header", "true")]);
        let locations = ["s3://b/labels.csv".to_string()];
        let (urls, store) = take_store_options(&locations, &mut table).unwrap().unwrap();
        assert_eq!(urls[0].as_str(), "s3://b/labels.csv");
        assert_eq!(store, options(&[("region", "eu-west-1")]));
        assert_eq!(table, options(&[("format.has_header", "true")]));

        let mut local = options(&[("aws.region", "eu-west-1")]);
        let err = take_store_options(&["data/labels.csv".to_string()], &mut local)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in one"), "{err}");
        let mut other = options(&[("gcp.service_account", "x")]);
        let err = take_store_options(&["s3://b/x".to_string()], &mut other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'gcp.service_account' does not apply to s3://b/"), "{err}");
        let mut none = options(&[("format.delimiter", ";")]);
        assert!(take_store_options(&["s3://b/x".to_string()], &mut none)
            .unwrap()
            .is_none());
    }

    #[test]
    fn globs_in_object_store_urls() {
        let url = table_url("s3://b/frames/day*/x?.jpg").unwrap();
        assert_eq!(url.as_str(), "s3://b/frames/");
        let matches = |path: &str| url.contains(&object_store::path::Path::from(path), false);
        assert!(matches("frames/day1/x1.jpg"));
        assert!(!matches("frames/night/x1.jpg"));
        assert_eq!(table_url("s3://b/frames/").unwrap().as_str(), "s3://b/frames/");
        assert_eq!(table_url("/tmp/a/*.png").unwrap().as_str(), "file:///tmp/a/");
    }

    #[test]
    fn builds_stores_on_first_use_and_keeps_them() {
        let registry = ObjectStoresFromEnv::default();
        let url = Url::parse("https://example.invalid/data/x.png").unwrap();
        let first = registry.get_store(&url).unwrap();
        let again = registry.get_store(&url).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert!(registry.get_store(&Url::parse("file:///tmp").unwrap()).is_ok());
        assert!(registry.get_store(&Url::parse("memory://nothing").unwrap()).is_err());
    }

    #[test]
    fn credentials_are_redacted() {
        let sql = "CREATE EXTERNAL TABLE t STORED AS IMAGES LOCATION 's3://b/x/' OPTIONS (\
                   'aws.access_key_id' 'AKIA1', 'aws.secret_access_key' 'wJal''r/K', 'aws.region' 'eu', \
                   'aws.session_token' 'TOK999', 'azure.storage_account_key' 'k==')";
        let redacted = redact_secrets(sql);
        for secret in ["wJal", "TOK999", "k=="] {
            assert!(!redacted.contains(secret), "{redacted}");
        }
        for kept in [
            "'AKIA1'",
            "'eu'",
            "'aws.secret_access_key' '***'",
            "LOCATION 's3://b/x/'",
        ] {
            assert!(redacted.contains(kept), "{kept}: {redacted}");
        }
        assert_eq!(redact_secrets("SELECT 'secret', 'x'"), "SELECT 'secret', 'x'");
        assert_eq!(redact_secrets("SELECT 'unclosed"), "SELECT 'unclosed");
        assert!(is_secret_option("aws.secret_access_key") && !is_secret_option("aws.access_key_id"));
    }

    #[test]
    fn local_paths_from_store_locations() {
        let path = local_file(&object_store::path::Path::from("data/a b/1.jpg")).unwrap();
        assert_eq!(path, std::path::PathBuf::from("/data/a b/1.jpg"));
    }
}
