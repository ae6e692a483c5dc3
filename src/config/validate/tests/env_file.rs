//! `env_file`: layering, merging under `env`, and the errors of the files themselves.

use super::*;

fn all_errors(text: &str) -> Vec<String> {
    check(text)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn files_merge_in_order_under_env() {
    let text = "[defaults]\nenv_file = \".env\"\nenv = { A = \"explicit\" }\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\nenv_file = [\".env\", \"/cfg/local.env\"]\n\
                [app.profile.prod]\nenv_file = \"secret.env\"\n\
                [[app]]\nname = \"c\"\ncmd = \"x\"\nenv_file = []\n";
    let config = check(text).unwrap();
    let (a, b, c) = (&config.apps[0], &config.apps[1], &config.apps[2]);
    assert_eq!(a.env_file, [PathBuf::from("/cfg/.env")]);
    assert_eq!(
        a.env,
        env(&[("A", "explicit"), ("B", "from file")]),
        "an `env` variable of a lower layer still wins over the files"
    );
    assert_eq!(
        b.env_file,
        [PathBuf::from("/cfg/.env"), PathBuf::from("/cfg/local.env")]
    );
    assert_eq!(
        b.env,
        env(&[("A", "explicit"), ("B", "from local"), ("C", "from local")]),
        "a later file wins over an earlier one"
    );
    assert!(c.env_file.is_empty(), "`[]` clears the list of [defaults]");
    assert_eq!(c.env, env(&[("A", "explicit")]));

    let prod = check_with(text, Some("prod")).unwrap();
    assert_eq!(prod.apps[1].env_file, [PathBuf::from("/cfg/secret.env")]);
    assert_eq!(
        prod.apps[1].env,
        env(&[("A", "explicit"), ("TOKEN", "s3cr3t")]),
        "the profile's list replaces the app's"
    );
}

#[test]
fn an_unreadable_file_is_reported_where_it_is_named() {
    assert_eq!(
        all_errors(
            "[[app]]\nname = \"a\"\ncmd = \"x\"\nenv_file = [\".env\", \"missing.env\", \"web\"]\n"
        ),
        [
            "/cfg/ecosystem.toml:4:21: cannot read env file `/cfg/missing.env`: \
             No such file or directory (os error 2)",
            "/cfg/ecosystem.toml:4:36: cannot read env file `/cfg/web`: \
             Is a directory (os error 21)",
        ]
    );
}

#[test]
fn bad_lines_are_reported_in_the_env_file_after_the_config_errors() {
    let text = "[defaults]\nenv_file = [\"bad.env\", \"binary.env\"]\n\
                [[app]]\nname = \"a\"\ncmd = \"x\"\n\
                [[app]]\nname = \"b\"\ncmd = \"x\"\nkill_timeout = 5\n";
    assert_eq!(
        all_errors(text),
        [
            "/cfg/ecosystem.toml:9:16: invalid `kill_timeout`: the number 5 has no unit; \
             write a string like \"5s\" or \"5ms\" (expected a duration like \"500ms\", \"5s\", \"2m\")",
            "/cfg/bad.env:2:1: variable name `1X` starts with a digit (expected `KEY=value`, \
             with KEY made of letters, digits and `_`, not starting with a digit)",
            "/cfg/bad.env:3:7: unterminated single-quoted value: no closing '",
            "/cfg/binary.env:2:3: not UTF-8",
        ],
        "each error once, though two apps read the files"
    );
}

#[test]
fn wrong_values() {
    assert_eq!(
        errors("[[app]]\nname = \"a\"\ncmd = \"x\"\nenv_file = [\".env\", 3]\n"),
        ["4:21: invalid type for a `env_file` element: found an integer (expected a path)"]
    );
    assert_eq!(
        errors("[defaults]\nenv_file = { a = 1 }\n"),
        ["2:12: invalid type for `env_file`: found a table \
          (expected a path, or an array of paths like [\".env\", \"local.env\"])"]
    );
    assert_eq!(
        errors("[defaults]\nenv_file = \"\"\n"),
        ["2:12: `env_file` is empty (expected a path)"]
    );
}

#[test]
fn validate_alone_reads_no_env_file() {
    let text = "[[app]]\nname = \"a\"\ncmd = \"x\"\ncwd = \"/\"\nenv_file = \".env\"\n";
    let e =
        crate::config::validate::validate(Path::new(FILE), text, None, 1, &|_| true).unwrap_err();
    assert_eq!(
        e.to_string(),
        "/cfg/ecosystem.toml:5:12: cannot read env file `/cfg/.env`: env files are not read here"
    );
}
