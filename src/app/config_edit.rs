//! Edits of the configuration file that node commands make (`gateway node drain`, `gateway
//! node remove`): done on the document, so the user's comments, order and formatting stay as
//! they were. Every edit is validated as a whole configuration before anything is written, and
//! written atomically (a temp file beside it, fsynced, renamed over it, its directory
//! fsynced): a crash leaves the old file or the new one, never half of either.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Table};

use crate::config::{Config, ConfigError};

/// A configuration file being edited.
pub struct ConfigEdit {
    path: PathBuf,
    data_dir: PathBuf,
    doc: DocumentMut,
}

impl ConfigEdit {
    pub fn open(path: &Path, data_dir: &Path) -> Result<ConfigEdit, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| fail(path, e))?;
        let doc = text
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::new("config", format!("{}: {e}", path.display())))?;
        Ok(ConfigEdit {
            path: path.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            doc,
        })
    }

    /// Sets (or clears) `drain = true` on node `id`. Returns whether anything changed.
    pub fn set_drain(&mut self, id: &str, on: bool) -> Result<bool, ConfigError> {
        let node = self.node(id)?;
        let was = node.get("drain").and_then(|v| v.as_bool()).unwrap_or(false);
        if was == on {
            return Ok(false);
        }
        if on {
            node.insert("drain", toml_edit::value(true));
        } else {
            node.remove("drain");
        }
        Ok(true)
    }

    /// Takes node `id` out of the configuration.
    pub fn remove_node(&mut self, id: &str) -> Result<(), ConfigError> {
        let index = self.index_of(id)?;
        self.nodes()?.remove(index);
        Ok(())
    }

    /// The configuration as edited, validated like `gateway run` validates it.
    pub fn check(&self) -> Result<Config, ConfigError> {
        Config::parse(&self.doc.to_string(), &self.data_dir)
    }

    /// Validates, then writes the edited file in place of the old one.
    pub fn save(&self) -> Result<Config, ConfigError> {
        let cfg = self.check()?;
        let text = self.doc.to_string();
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.toml".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            // The file may hold secrets (node tokens, S3 keys): keep its permissions.
            if let Ok(meta) = std::fs::metadata(&self.path) {
                f.set_permissions(meta.permissions())?;
            }
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(&self.path, e));
        }
        Ok(cfg)
    }

    fn nodes(&mut self) -> Result<&mut toml_edit::ArrayOfTables, ConfigError> {
        let path = self.path.display().to_string();
        self.doc
            .get_mut("nodes")
            .and_then(|n| n.as_array_of_tables_mut())
            .ok_or_else(|| {
                ConfigError::new(
                    "nodes",
                    format!("{path} has no [[nodes]] tables to edit (edit the file by hand)"),
                )
            })
    }

    fn index_of(&mut self, id: &str) -> Result<usize, ConfigError> {
        let path = self.path.display().to_string();
        self.nodes()?
            .iter()
            .position(|t| t.get("id").and_then(|v| v.as_str()) == Some(id))
            .ok_or_else(|| ConfigError::new("node", format!("no node {id:?} in {path}")))
    }

    fn node(&mut self, id: &str) -> Result<&mut Table, ConfigError> {
        let index = self.index_of(id)?;
        let path = self.path.display().to_string();
        self.nodes()?
            .get_mut(index)
            .ok_or_else(|| ConfigError::new("node", format!("no node {id:?} in {path}")))
    }
}

fn fail(path: &Path, e: std::io::Error) -> ConfigError {
    ConfigError::new("config", format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# my gateway\n[storage]\nscheme = \"2/3/3/4\" # keep\n\n\
        [[nodes]]\nid = \"n1\"\npath = \"nodes/n1\"\n\n\
        [[nodes]]\nid = \"n2\"\npath = \"nodes/n2\"\n\n\
        # the old disk\n[[nodes]]\nid = \"n3\"\npath = \"nodes/n3\"\n\n\
        [[nodes]]\nid = \"n4\"\npath = \"nodes/n4\"\n";

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn drain_and_remove_keep_the_rest_of_the_file() {
        let (dir, path) = file(TEXT);
        let mut e = ConfigEdit::open(&path, dir.path()).unwrap();
        assert!(e.set_drain("n3", true).unwrap());
        assert!(!e.set_drain("n3", true).unwrap());
        let cfg = e.save().unwrap();
        assert!(cfg.nodes.iter().any(|n| n.id == "n3" && n.drain));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# my gateway\n"), "{text}");
        assert!(text.contains("scheme = \"2/3/3/4\" # keep"), "{text}");
        assert!(
            text.contains("id = \"n3\"\npath = \"nodes/n3\"\ndrain = true"),
            "{text}"
        );

        let mut e = ConfigEdit::open(&path, dir.path()).unwrap();
        e.remove_node("n3").unwrap();
        let cfg = e.save().unwrap();
        let ids: Vec<&str> = cfg.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n4"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("n3"), "{text}");
        assert!(text.contains("# my gateway"), "{text}");
        // No temp file is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_edit_that_breaks_the_configuration_writes_nothing() {
        let (dir, path) = file(TEXT);
        let mut e = ConfigEdit::open(&path, dir.path()).unwrap();
        e.remove_node("n4").unwrap();
        e.remove_node("n3").unwrap();
        let err = e.save().unwrap_err();
        assert_eq!(err.field, "nodes");
        assert!(err.reason.contains("needs at least success = 3"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), TEXT);

        let mut e = ConfigEdit::open(&path, dir.path()).unwrap();
        e.set_drain("n1", true).unwrap();
        e.set_drain("n2", true).unwrap();
        assert!(e.save().unwrap_err().reason.contains("add a node first"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), TEXT);

        let mut e = ConfigEdit::open(&path, dir.path()).unwrap();
        let err = e.set_drain("n9", true).unwrap_err();
        assert!(err.reason.contains("no node \"n9\""), "{err}");
    }
}
