//! Facts about the repository itself: the core stays pure, the README's config reference
//! names only keys that exist.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_core_touches_no_os_reads_no_clock_and_speaks_no_wire() {
    // Spelled in pieces so this file does not match itself.
    let banned = [
        ["tok", "io::"].concat(),
        ["ni", "x::"].concat(),
        ["sys", "info"].concat(),
        ["std::", "fs"].concat(),
        ["std::", "process"].concat(),
        ["Instant::", "now"].concat(),
        // The core has its own orders, reasons and answers; the runtime maps the wire's.
        ["serde", "_json"].concat(),
        ["crate::", "control"].concat(),
        ["crate::", "runtime"].concat(),
        ["crate::", "process"].concat(),
        ["crate::", "logs"].concat(),
        ["crate::", "probe"].concat(),
        ["crate::", "monitor"].concat(),
        ["crate::", "http"].concat(),
    ];
    let mut dirs = vec![root().join("src/core")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/core") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        for word in &banned {
            assert!(
                !text.contains(word.as_str()),
                "{} mentions `{word}`",
                path.display()
            );
        }
    }
}

#[test]
fn the_readme_config_reference_names_real_keys() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- config-keys -->")
        .expect("config reference marker");
    let end = readme
        .find("<!-- /config-keys -->")
        .expect("config reference end marker");
    let known: Vec<&str> = sup::config::raw::SUPERVISOR_KEYS
        .iter()
        .chain(sup::config::raw::APP_KEYS)
        .copied()
        .collect();
    let mut seen = 0;
    for line in readme[start..end].lines() {
        // Table rows: | `key` | ...
        let Some(rest) = line.strip_prefix("| `") else {
            continue;
        };
        let key = rest.split('`').next().expect("key");
        assert!(
            known.contains(&key),
            "README documents `{key}`, which the config does not know"
        );
        seen += 1;
    }
    for key in &known {
        assert!(
            readme[start..end].contains(&format!("| `{key}`")),
            "README's config reference lacks `{key}`"
        );
    }
    assert!(seen >= known.len());
}
