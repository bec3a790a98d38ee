//! Certificate files in pyzmq's layout (`zmq.auth.create_certificates` / `load_certificate`).

use std::ffi::OsString;
use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{Local, NaiveDateTime, Timelike};
use tempfile::NamedTempFile;

use crate::error::RpcKeyError;
use crate::keys::{CurveKeypair, PublicKey, SecretBuf, SecretKey};

/// Where a pair of certificate files lives: `DIR/NAME.key` and `DIR/NAME.key_secret`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificatePaths {
    /// The public certificate, safe to hand to agents.
    pub public: PathBuf,
    /// The secret certificate, holding both keys.
    pub secret: PathBuf,
}

/// What [`write_certificates`] does when a certificate file already exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overwrite {
    /// Fail, naming the file, and write nothing.
    Refuse,
    /// Replace both files, each in one atomic rename.
    Replace,
}

/// The keys read from one certificate file: a `.key` file has only the public key.
#[derive(Clone, Debug)]
pub struct Certificate {
    pub public: PublicKey,
    pub secret: Option<SecretKey>,
}

impl CertificatePaths {
    pub fn new(dir: impl AsRef<Path>, name: &str) -> Self {
        let dir = dir.as_ref();
        Self {
            public: dir.join(format!("{name}.key")),
            secret: dir.join(format!("{name}.key_secret")),
        }
    }
}

/// Write `keypair` as `DIR/NAME.key` (mode 0644) and `DIR/NAME.key_secret` (mode 0600), byte for
/// byte as pyzmq 26 writes them.
///
/// Each file is written completely to a temporary file in the same directory and then renamed
/// into place, so readers see either the old file or the new one. On error, nothing is left
/// behind: not a temporary file, and not a new public file without its secret file.
pub fn write_certificates(
    dir: &Path,
    name: &str,
    keypair: &CurveKeypair,
    overwrite: Overwrite,
) -> Result<CertificatePaths, RpcKeyError> {
    let paths = CertificatePaths::new(dir, name);
    if overwrite == Overwrite::Refuse {
        refuse_existing(&paths.public)?;
        refuse_existing(&paths.secret)?;
    }
    // pyzmq stamps both files with the same time.
    let generated = python_timestamp(Local::now().naive_local());
    let public_key = keypair.public_key().to_z85();
    let public = stage(
        &paths.public,
        &public_file(&generated, &public_key),
        PUBLIC_MODE,
    )?;
    let secret_contents = secret_file(&generated, &public_key, keypair.secret_key());
    let secret = stage(&paths.secret, &secret_contents.0, SECRET_MODE)?;
    let previous_public = match overwrite {
        Overwrite::Refuse => None,
        Overwrite::Replace => read_if_exists(&paths.public)?,
    };
    publish(public, &paths.public, overwrite)?;
    if let Err(error) = publish(secret, &paths.secret, overwrite) {
        restore(&paths.public, previous_public);
        return Err(error);
    }
    Ok(paths)
}

/// Read the keys of a certificate file the way pyzmq's `load_certificate` does, then check them.
///
/// Per line: strip whitespace, skip `#` comments; a line starting with `public-key` or
/// `secret-key` holds its value after the first `=`, with spaces, tabs and quotes stripped. Unlike
/// pyzmq, the values must be valid 40-character Z85 keys, and when the file has both keys the
/// public key must be the one derived from the secret key.
pub fn load_certificate(path: &Path) -> Result<Certificate, RpcKeyError> {
    let contents = SecretBuf(fs::read(path).map_err(RpcKeyError::io(path, "read"))?);
    let (public, secret) = find_keys(path, &contents.0)?;
    let public = public.ok_or_else(|| RpcKeyError::MissingPublicKey {
        path: path.to_owned(),
    })?;
    let public = PublicKey::from_z85(public).map_err(invalid_key(path, "public-key"))?;
    let secret = secret
        .map(|text| SecretKey::from_z85(text).map_err(invalid_key(path, "secret-key")))
        .transpose()?;
    if secret
        .as_ref()
        .is_some_and(|secret| secret.public_key() != public)
    {
        return Err(RpcKeyError::KeyMismatch {
            path: path.to_owned(),
        });
    }
    Ok(Certificate { public, secret })
}

/// Load the keypair of a `.key_secret` file, as the manager does with `rpc-auth-manager-keypair`.
pub fn load_keypair(path: &Path) -> Result<CurveKeypair, RpcKeyError> {
    let certificate = load_certificate(path)?;
    let secret = certificate
        .secret
        .ok_or_else(|| RpcKeyError::MissingSecretKey {
            path: path.to_owned(),
        })?;
    Ok(CurveKeypair::from_secret_key(secret))
}

const PUBLIC_MODE: u32 = 0o644;
const SECRET_MODE: u32 = 0o600;

const PUBLIC_BANNER: &str = "\
#   ZeroMQ CURVE Public Certificate
#   Exchange securely, or use a secure mechanism to verify the contents
#   of this file after exchange. Store public certificates in your home
#   directory, in the .curve subdirectory.
";

const SECRET_BANNER: &str = "\
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.
";

/// Python's `str(datetime.now())`: the fraction appears only when the microsecond is not zero.
fn python_timestamp(time: NaiveDateTime) -> String {
    // Truncated like Python's microsecond. `Local::now()` never returns a leap second.
    let micros = time.nanosecond() / 1_000;
    let seconds = time.format("%Y-%m-%d %H:%M:%S");
    if micros == 0 {
        seconds.to_string()
    } else {
        format!("{seconds}.{micros:06}")
    }
}

fn public_file(generated: &str, public_key: &str) -> Vec<u8> {
    [
        "#   ****  Generated on ",
        generated,
        " by pyzmq  ****\n",
        PUBLIC_BANNER,
        "\nmetadata\ncurve\n    public-key = \"",
        public_key,
        "\"\n",
    ]
    .concat()
    .into_bytes()
}

fn secret_file(generated: &str, public_key: &str, secret_key: &SecretKey) -> SecretBuf {
    let secret_key = SecretBuf(secret_key.to_z85().into_bytes());
    let parts: [&[u8]; 9] = [
        b"#   ****  Generated on ",
        generated.as_bytes(),
        b" by pyzmq  ****\n",
        SECRET_BANNER.as_bytes(),
        b"\nmetadata\ncurve\n    public-key = \"",
        public_key.as_bytes(),
        b"\"\n    secret-key = \"",
        &secret_key.0,
        b"\"\n",
    ];
    SecretBuf(parts.concat())
}

fn refuse_existing(path: &Path) -> Result<(), RpcKeyError> {
    // symlink_metadata, so that a dangling symlink also counts as existing.
    match fs::symlink_metadata(path) {
        Ok(_) => Err(RpcKeyError::AlreadyExists {
            path: path.to_owned(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(RpcKeyError::io(path, "check")(error)),
    }
}

/// Write `contents` to a new hidden temporary file next to `destination`.
fn stage(destination: &Path, contents: &[u8], mode: u32) -> Result<NamedTempFile, RpcKeyError> {
    let dir = match destination.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut prefix = OsString::from(".");
    prefix.push(destination.file_name().unwrap_or_default());
    prefix.push(".");
    // The mode is given to open(2), so the secret file is never readable by others, not even
    // while empty.
    let mut file = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(RpcKeyError::io(dir, "create a temporary file in"))?;
    let temporary = file.path().to_owned();
    // The umask may have narrowed the mode; restore it while the file is still empty.
    file.as_file()
        .set_permissions(Permissions::from_mode(mode))
        .map_err(RpcKeyError::io(&temporary, "set the mode of"))?;
    file.write_all(contents)
        .and_then(|()| file.as_file().sync_all())
        .map_err(RpcKeyError::io(&temporary, "write"))?;
    Ok(file)
}

fn publish(
    staged: NamedTempFile,
    destination: &Path,
    overwrite: Overwrite,
) -> Result<(), RpcKeyError> {
    let persisted = match overwrite {
        Overwrite::Replace => staged.persist(destination),
        Overwrite::Refuse => staged.persist_noclobber(destination),
    };
    // On error the temporary file is dropped with the error, which deletes it.
    persisted.map(drop).map_err(|error| {
        if overwrite == Overwrite::Refuse && error.error.kind() == io::ErrorKind::AlreadyExists {
            RpcKeyError::AlreadyExists {
                path: destination.to_owned(),
            }
        } else {
            RpcKeyError::io(destination, "move the new file into place at")(error.error)
        }
    })
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, RpcKeyError> {
    match fs::read(path) {
        Ok(contents) => Ok(Some(contents)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(RpcKeyError::io(path, "read")(error)),
    }
}

/// Put back what was at `path` before (or remove it), after its partner file could not be
/// written. Best effort: the caller is already returning the error that made this necessary.
fn restore(path: &Path, previous: Option<Vec<u8>>) {
    match previous {
        Some(contents) => {
            let _ = stage(path, &contents, PUBLIC_MODE)
                .and_then(|staged| publish(staged, path, Overwrite::Replace));
        }
        None => {
            let _ = fs::remove_file(path);
        }
    }
}

type KeyValue<'a> = Option<&'a [u8]>;

/// The raw `public-key` and `secret-key` values, with pyzmq's quirks: a later line overrides an
/// earlier one until both values have been seen non-empty.
fn find_keys<'a>(
    path: &Path,
    contents: &'a [u8],
) -> Result<(KeyValue<'a>, KeyValue<'a>), RpcKeyError> {
    let mut public = None;
    let mut secret = None;
    for (index, line) in contents.split(|&byte| byte == b'\n').enumerate() {
        // Python's bytes.strip() strips ASCII whitespace including \v, unlike trim_ascii().
        let line = strip(line, |byte| b" \t\n\r\x0b\x0c".contains(&byte));
        let (slot, field) = if line.starts_with(b"#") {
            continue;
        } else if line.starts_with(b"public-key") {
            (&mut public, "public-key")
        } else if line.starts_with(b"secret-key") {
            (&mut secret, "secret-key")
        } else {
            continue;
        };
        let Some(equals) = line.iter().position(|&byte| byte == b'=') else {
            return Err(RpcKeyError::MissingEquals {
                path: path.to_owned(),
                line: index + 1,
                field,
            });
        };
        *slot = Some(strip(&line[equals + 1..], |byte| b" \t'\"".contains(&byte)));
        let seen = |value: KeyValue<'_>| value.is_some_and(|value| !value.is_empty());
        if seen(public) && seen(secret) {
            break;
        }
    }
    Ok((public, secret))
}

fn strip(bytes: &[u8], strip_byte: impl Fn(u8) -> bool) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&byte| !strip_byte(byte))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&byte| !strip_byte(byte))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

fn invalid_key(path: &Path, field: &'static str) -> impl FnOnce(RpcKeyError) -> RpcKeyError {
    let path = path.to_owned();
    move |reason| RpcKeyError::InvalidKey {
        path,
        field,
        reason: Box::new(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::NaiveDate;
    use tempfile::TempDir;

    const TIMESTAMP: &str = "2022-11-20 00:07:04.063178";
    const PUBLIC_A: &str = "2CVWV6D&QXW]Ii55A)@qco1MAyn+7#3/w+9Xnrjk";
    const SECRET_A: &str = "0rJua1Qkhq2)}4G4gS)W5Ft->6=4P585:Cl9uDpB";

    fn keypair(seed: u8) -> CurveKeypair {
        CurveKeypair::from_secret([seed; 32])
    }

    fn keypair_a() -> CurveKeypair {
        CurveKeypair::from_secret(std::array::from_fn(|index| index as u8 + 1))
    }

    /// Load `text` from a fresh file; returns the file's path for checking error messages.
    fn load_text(text: &str) -> (TempDir, PathBuf, Result<Certificate, RpcKeyError>) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("test.key_secret");
        fs::write(&path, text).unwrap();
        let result = load_certificate(&path);
        (dir, path, result)
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// The names in `dir`, sorted, to show that no temporary file was left behind.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn public_file_layout_is_pyzmqs() {
        let expected = format!(
            "#   ****  Generated on {TIMESTAMP} by pyzmq  ****\n\
             #   ZeroMQ CURVE Public Certificate\n\
             #   Exchange securely, or use a secure mechanism to verify the contents\n\
             #   of this file after exchange. Store public certificates in your home\n\
             #   directory, in the .curve subdirectory.\n\
             \n\
             metadata\n\
             curve\n\
             \x20   public-key = \"{PUBLIC_A}\"\n"
        );
        let actual = public_file(TIMESTAMP, PUBLIC_A);
        assert_eq!(String::from_utf8(actual).unwrap(), expected);
    }

    #[test]
    fn secret_file_layout_is_pyzmqs() {
        let expected = format!(
            "#   ****  Generated on {TIMESTAMP} by pyzmq  ****\n\
             #   ZeroMQ CURVE **Secret** Certificate\n\
             #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n\
             \n\
             metadata\n\
             curve\n\
             \x20   public-key = \"{PUBLIC_A}\"\n\
             \x20   secret-key = \"{SECRET_A}\"\n"
        );
        let actual = secret_file(TIMESTAMP, PUBLIC_A, keypair_a().secret_key());
        assert_eq!(String::from_utf8(actual.0.clone()).unwrap(), expected);
    }

    #[test]
    fn timestamp_is_formatted_like_python_str_of_datetime() {
        let day = NaiveDate::from_ymd_opt(2022, 11, 20).unwrap();
        let with_micros = day.and_hms_micro_opt(0, 7, 4, 63_178).unwrap();
        assert_eq!(python_timestamp(with_micros), TIMESTAMP);
        let whole_second = day.and_hms_opt(13, 0, 9).unwrap();
        assert_eq!(python_timestamp(whole_second), "2022-11-20 13:00:09");
        let nanos_truncated = day.and_hms_nano_opt(1, 2, 3, 4_000_999).unwrap();
        assert_eq!(
            python_timestamp(nanos_truncated),
            "2022-11-20 01:02:03.004000"
        );
    }

    #[test]
    fn paths_follow_pyzmqs_names() {
        let paths = CertificatePaths::new("fixtures/manager", "manager");
        assert_eq!(paths.public, Path::new("fixtures/manager/manager.key"));
        assert_eq!(
            paths.secret,
            Path::new("fixtures/manager/manager.key_secret")
        );
    }

    #[test]
    fn write_then_load_round_trip() {
        let dir = TempDir::new().unwrap();
        let keypair = keypair_a();
        let paths = write_certificates(dir.path(), "manager", &keypair, Overwrite::Refuse).unwrap();
        assert_eq!(paths, CertificatePaths::new(dir.path(), "manager"));
        assert_eq!(listing(dir.path()), ["manager.key", "manager.key_secret"]);

        let public = load_certificate(&paths.public).unwrap();
        assert_eq!(public.public.to_z85(), PUBLIC_A);
        assert!(public.secret.is_none());

        let secret = load_certificate(&paths.secret).unwrap();
        assert_eq!(secret.public.to_z85(), PUBLIC_A);
        assert_eq!(secret.secret.unwrap().to_z85(), SECRET_A);

        let loaded = load_keypair(&paths.secret).unwrap();
        assert_eq!(loaded.public_key(), keypair.public_key());
        assert_eq!(
            loaded.secret_key().as_bytes(),
            keypair.secret_key().as_bytes()
        );
    }

    #[test]
    fn written_files_have_their_modes() {
        let dir = TempDir::new().unwrap();
        let paths = write_certificates(dir.path(), "m", &keypair(1), Overwrite::Refuse).unwrap();
        assert_eq!(mode(&paths.public), 0o644);
        assert_eq!(mode(&paths.secret), 0o600);
        let paths = write_certificates(dir.path(), "m", &keypair(2), Overwrite::Replace).unwrap();
        assert_eq!(mode(&paths.public), 0o644);
        assert_eq!(mode(&paths.secret), 0o600);
    }

    #[test]
    fn refuse_leaves_an_existing_pair_untouched() {
        let dir = TempDir::new().unwrap();
        let paths = write_certificates(dir.path(), "m", &keypair(1), Overwrite::Refuse).unwrap();
        let public_before = fs::read(&paths.public).unwrap();
        let secret_before = fs::read(&paths.secret).unwrap();

        let error =
            write_certificates(dir.path(), "m", &keypair(2), Overwrite::Refuse).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} already exists; pass --force to replace it",
                paths.public.display()
            )
        );
        assert_eq!(fs::read(&paths.public).unwrap(), public_before);
        assert_eq!(fs::read(&paths.secret).unwrap(), secret_before);
        assert_eq!(listing(dir.path()), ["m.key", "m.key_secret"]);
    }

    #[test]
    fn refuse_writes_nothing_when_only_the_secret_file_exists() {
        let dir = TempDir::new().unwrap();
        let paths = CertificatePaths::new(dir.path(), "m");
        fs::write(&paths.secret, "keep me").unwrap();
        let error =
            write_certificates(dir.path(), "m", &keypair(1), Overwrite::Refuse).unwrap_err();
        assert!(matches!(&error, RpcKeyError::AlreadyExists { path } if *path == paths.secret));
        assert_eq!(fs::read_to_string(&paths.secret).unwrap(), "keep me");
        assert_eq!(listing(dir.path()), ["m.key_secret"]);
    }

    #[test]
    fn replace_swaps_both_files() {
        let dir = TempDir::new().unwrap();
        write_certificates(dir.path(), "m", &keypair(1), Overwrite::Refuse).unwrap();
        let new = keypair(2);
        let paths = write_certificates(dir.path(), "m", &new, Overwrite::Replace).unwrap();
        assert_eq!(
            load_certificate(&paths.public).unwrap().public,
            *new.public_key()
        );
        assert_eq!(
            load_keypair(&paths.secret).unwrap().public_key(),
            new.public_key()
        );
        assert_eq!(listing(dir.path()), ["m.key", "m.key_secret"]);
    }

    #[test]
    fn a_failed_write_leaves_no_half_pair() {
        let dir = TempDir::new().unwrap();
        let paths = CertificatePaths::new(dir.path(), "m");
        // A non-empty directory where the secret file should go makes its rename fail after the
        // public file has been renamed into place.
        fs::create_dir(&paths.secret).unwrap();
        fs::write(paths.secret.join("occupied"), "").unwrap();
        let error =
            write_certificates(dir.path(), "m", &keypair(1), Overwrite::Replace).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot", paths.secret.display())),
            "{error}"
        );
        assert_eq!(listing(dir.path()), ["m.key_secret"]);

        // An existing public file is put back as it was.
        fs::write(&paths.public, "old public").unwrap();
        write_certificates(dir.path(), "m", &keypair(1), Overwrite::Replace).unwrap_err();
        assert_eq!(fs::read_to_string(&paths.public).unwrap(), "old public");
        assert_eq!(listing(dir.path()), ["m.key", "m.key_secret"]);
    }

    #[test]
    fn writing_into_a_missing_directory_names_it() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("missing");
        let error = write_certificates(&missing, "m", &keypair(1), Overwrite::Refuse).unwrap_err();
        assert!(
            error.to_string().starts_with(&format!(
                "{}: cannot create a temporary file in",
                missing.display()
            )),
            "{error}"
        );
    }

    #[test]
    fn a_tampered_public_key_is_rejected() {
        let dir = TempDir::new().unwrap();
        let paths = write_certificates(dir.path(), "m", &keypair_a(), Overwrite::Refuse).unwrap();
        let other = keypair(7).public_key().to_z85();
        let tampered = fs::read_to_string(&paths.secret)
            .unwrap()
            .replace(PUBLIC_A, &other);
        fs::write(&paths.secret, tampered).unwrap();
        let error = load_certificate(&paths.secret).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: secret key does not match the public key",
                paths.secret.display()
            )
        );
    }

    #[test]
    fn parses_like_pyzmq() {
        let text = format!(
            "# public-key = \"{SECRET_A}\"\r\n\
             metadata\r\n\
             \x0b\tpublic-key\t=\t'{PUBLIC_A}'  \r\n\
             \tsecret-key=\"{SECRET_A}\r\n"
        );
        let (_dir, _path, result) = load_text(&text);
        let certificate = result.unwrap();
        assert_eq!(certificate.public.to_z85(), PUBLIC_A);
        assert_eq!(certificate.secret.unwrap().to_z85(), SECRET_A);
    }

    #[test]
    fn later_lines_override_until_both_keys_are_seen() {
        let other = keypair(7).public_key().to_z85();
        let text = format!(
            "public-key = \"{other}\"\npublic-key = \"{PUBLIC_A}\"\n\
             secret-key = \"{SECRET_A}\"\npublic-key = \"{other}\"\n"
        );
        let (_dir, _path, result) = load_text(&text);
        assert_eq!(result.unwrap().public.to_z85(), PUBLIC_A);
    }

    #[test]
    fn reports_what_is_wrong_with_a_file() {
        let cases = [
            ("metadata\ncurve\n", "no public-key line found"),
            ("curve\n    public-key\n", "line 2: `public-key` has no `=`"),
            (
                "public-key = \"HelloWorld\"\n",
                "invalid public-key: a CURVE key is 40 Z85 characters (32 bytes), got 10 characters",
            ),
            (
                "public-key = \"\"\n",
                "invalid public-key: a CURVE key is 40 Z85 characters (32 bytes), got 0 characters",
            ),
            (
                &format!(
                    "public-key = \"{PUBLIC_A}\"\nsecret-key = \"{}~\"\n",
                    &SECRET_A[..39]
                ),
                "invalid secret-key: invalid Z85 character '~' at position 39",
            ),
        ];
        for (text, message) in cases {
            let (_dir, path, result) = load_text(text);
            let error = result.unwrap_err();
            assert_eq!(error.to_string(), format!("{}: {message}", path.display()));
        }
    }

    #[test]
    fn reports_a_missing_file_and_a_missing_secret_key() {
        let dir = TempDir::new().unwrap();
        let missing = dir.path().join("nowhere.key_secret");
        let error = load_certificate(&missing).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: cannot read: ", missing.display())),
            "{error}"
        );

        let paths = write_certificates(dir.path(), "m", &keypair(1), Overwrite::Refuse).unwrap();
        let error = load_keypair(&paths.public).unwrap_err();
        assert!(
            matches!(error, RpcKeyError::MissingSecretKey { .. }),
            "{error}"
        );
    }
}
