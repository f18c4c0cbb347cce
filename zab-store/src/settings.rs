//! How to reach an S3 store, resolved as the AWS command line does:
//! credentials from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`, or from a profile of `~/.aws/credentials` and
//! `~/.aws/config` (`--aws-profile`, `AWS_PROFILE`, else `default`); the
//! endpoint from `--endpoint`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or
//! the profile's `endpoint_url`; the region from `--region`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION` or the profile (else us-east-1).
//!
//! Resolution is a pure function of the options, the environment and the
//! two files' text. The secret key and token never leave [`Credentials`]:
//! its `Debug` prints neither, and no message names them.

use std::fmt;

/// The store options of zab-send and zab-store.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Settings {
    /// S3: the endpoint of a non-AWS server (MinIO, Wasabi, Backblaze B2,
    /// Ceph), e.g. https://s3.example.com; also AWS_ENDPOINT_URL. Requests
    /// then use path-style addressing.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// S3: the profile of ~/.aws/credentials and ~/.aws/config to use
    /// (also AWS_PROFILE).
    #[arg(long, value_name = "NAME")]
    pub aws_profile: Option<String>,

    /// S3: the region (also AWS_REGION, AWS_DEFAULT_REGION, the profile's
    /// region); us-east-1 when none says.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// S3: the storage class of new objects (STANDARD, STANDARD_IA,
    /// GLACIER_IR, …); the server's default when absent.
    #[arg(long, value_name = "CLASS")]
    pub storage_class: Option<String>,

    /// Parts of one upload in flight at once; memory is about the part
    /// size (8 MiB or more, from the stream's estimate) times this plus one:
    /// 88 MiB by default for a stream up to 62 GiB.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub upload_jobs: u16,
}

/// An access key, its secret and maybe a session token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ key_id: {:?}, secret: <hidden> }}",
            self.key_id
        )
    }
}

/// Everything resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub credentials: Credentials,
    pub region: String,
    pub endpoint: Option<String>,
    /// Where the credentials came from, for messages ("environment",
    /// "profile backup of ~/.aws/credentials").
    pub from: String,
}

/// The text of `~/.aws/credentials` and `~/.aws/config`, when they exist.
#[derive(Debug, Default)]
pub struct Files {
    pub credentials: Option<String>,
    pub config: Option<String>,
}

impl Files {
    /// Reads both files from `$AWS_SHARED_CREDENTIALS_FILE` and
    /// `$AWS_CONFIG_FILE`, else from `$HOME/.aws/`.
    pub fn read(env: &dyn Fn(&str) -> Option<String>) -> Files {
        let home = env("HOME");
        let path = |var: &str, name: &str| {
            env(var).or_else(|| home.as_ref().map(|h| format!("{h}/.aws/{name}")))
        };
        let read = |p: Option<String>| p.and_then(|p| std::fs::read_to_string(p).ok());
        Files {
            credentials: read(path("AWS_SHARED_CREDENTIALS_FILE", "credentials")),
            config: read(path("AWS_CONFIG_FILE", "config")),
        }
    }
}

/// The `key = value` pairs of section `name` of an INI text.
fn section(text: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = h.trim() == name;
            continue;
        }
        if let (true, Some((k, v))) = (inside, line.split_once('=')) {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn get(pairs: &[(String, String)], key: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .filter(|v| !v.is_empty())
}

/// The profile in use: its name, and its sections of the credentials and
/// config files.
struct Profile {
    name: String,
    credentials: Vec<(String, String)>,
    config: Vec<(String, String)>,
}

impl Profile {
    /// --aws-profile, else AWS_PROFILE, else `default`.
    fn find(s: &Settings, env: &dyn Fn(&str) -> Option<String>, files: &Files) -> Profile {
        let name = s
            .aws_profile
            .clone()
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let config_name = if name == "default" {
            "default".to_string()
        } else {
            format!("profile {name}")
        };
        let of = |text: &Option<String>, section_name: &str| {
            text.as_deref()
                .map(|t| section(t, section_name))
                .unwrap_or_default()
        };
        Profile {
            credentials: of(&files.credentials, &name),
            config: of(&files.config, &config_name),
            name,
        }
    }

    /// `key` from the credentials file's section, else the config file's.
    fn get(&self, key: &str) -> Option<String> {
        get(&self.credentials, key).or_else(|| get(&self.config, key))
    }

    /// The profile's keys, and where they were found.
    fn keys(&self) -> Option<(Credentials, String)> {
        Some((
            Credentials {
                key_id: self.get("aws_access_key_id")?,
                secret: self.get("aws_secret_access_key")?,
                token: self.get("aws_session_token"),
            },
            format!("profile {} of ~/.aws", self.name),
        ))
    }
}

/// Resolves the options with the environment `env` and the files.
pub fn resolve(
    s: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    files: &Files,
) -> Result<Resolved, String> {
    let env = |k: &str| env(k).filter(|v| !v.is_empty());
    let profile = Profile::find(s, &env, files);
    let (credentials, from) = credentials(s, &env, &profile)?;
    let region = s
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| get(&profile.config, "region"))
        .unwrap_or_else(|| "us-east-1".into());
    let endpoint = s
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| get(&profile.config, "endpoint_url"));
    if let Some(e) = &endpoint {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(format!(
                "--endpoint {e:?}: expected http://HOST or https://HOST"
            ));
        }
    }
    Ok(Resolved {
        credentials,
        region,
        endpoint,
        from,
    })
}

/// The keys, and where they were found: a profile named on the command
/// line wins over the environment's keys, which win over the profile's.
fn credentials(
    s: &Settings,
    env: &dyn Fn(&str) -> Option<String>,
    profile: &Profile,
) -> Result<(Credentials, String), String> {
    let from_env = || {
        Some((
            Credentials {
                key_id: env("AWS_ACCESS_KEY_ID")?,
                secret: env("AWS_SECRET_ACCESS_KEY")?,
                token: env("AWS_SESSION_TOKEN"),
            },
            "the environment".to_string(),
        ))
    };
    let found = match s.aws_profile {
        Some(_) => profile.keys(),
        None => from_env().or_else(|| profile.keys()),
    };
    found.ok_or_else(|| {
        format!(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give \
             aws_access_key_id and aws_secret_access_key in profile {} of ~/.aws/credentials",
            profile.name
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    const CREDS: &str = "[default]\naws_access_key_id = AKDEF\naws_secret_access_key = sdef\n\n\
        # a comment\n[backup]\naws_access_key_id=AKBK\naws_secret_access_key=sbk\naws_session_token = tbk\n";
    const CONFIG: &str = "[default]\nregion = eu-west-1\n[profile backup]\nregion = eu-central-1\n\
        endpoint_url = https://s3.example.com\n";

    fn files() -> Files {
        Files {
            credentials: Some(CREDS.into()),
            config: Some(CONFIG.into()),
        }
    }

    #[test]
    fn the_environment_first_then_the_default_profile() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
        ]);
        let r = resolve(&Settings::default(), &env, &files()).unwrap();
        assert_eq!(r.credentials.key_id, "AKENV");
        assert_eq!(r.region, "eu-west-1");
        assert_eq!(r.endpoint, None);
        let r = resolve(&Settings::default(), &env_of(&[]), &files()).unwrap();
        assert_eq!(
            (r.credentials.key_id.as_str(), r.credentials.secret.as_str()),
            ("AKDEF", "sdef")
        );
    }

    #[test]
    fn a_named_profile_with_its_region_and_endpoint() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "senv"),
        ]);
        let s = Settings {
            aws_profile: Some("backup".into()),
            ..Settings::default()
        };
        let r = resolve(&s, &env, &files()).unwrap();
        assert_eq!(r.credentials.key_id, "AKBK");
        assert_eq!(r.credentials.token.as_deref(), Some("tbk"));
        assert_eq!(r.region, "eu-central-1");
        assert_eq!(r.endpoint.as_deref(), Some("https://s3.example.com"));
        // AWS_PROFILE names it too, but the environment's keys win then.
        let env = env_of(&[("AWS_PROFILE", "backup"), ("AWS_REGION", "ap-south-1")]);
        let r = resolve(&Settings::default(), &env, &files()).unwrap();
        assert_eq!(
            (r.credentials.key_id.as_str(), r.region.as_str()),
            ("AKBK", "ap-south-1")
        );
        // The option beats the environment.
        let env = env_of(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")]);
        let s = Settings {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..Settings::default()
        };
        let r = resolve(&s, &env, &files()).unwrap();
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.1:1"));
    }

    #[test]
    fn no_credentials_or_a_bad_endpoint_is_one_clear_error() {
        let e = resolve(&Settings::default(), &env_of(&[]), &Files::default()).unwrap_err();
        assert!(e.starts_with("no S3 credentials"), "{e}");
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:9000"),
        ]);
        assert!(resolve(&Settings::default(), &env, &Files::default()).is_err());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let c = Credentials {
            key_id: "AKID".into(),
            secret: "very-secret-value".into(),
            token: Some("token-value".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(!shown.contains("very-secret") && !shown.contains("token-value"));
    }
}
