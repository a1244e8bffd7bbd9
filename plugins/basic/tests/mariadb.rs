//! The MySQL login against a real server, natively (the same code runs inside the plugin
//! over WASI sockets). Needs a running MariaDB or MySQL; ignored by default:
//!
//! ```sh
//! OCCOPUS_TEST_MYSQL=127.0.0.1:3306:wp:secret:wp \
//!     cargo test -p occopus-plugin-basic --test mariadb -- --ignored
//! ```
//!
//! `OCCOPUS_TEST_MYSQL` is `host:port:user:password:database`, naming a user that may
//! log in to that database with that password.

use occopus_plugin_basic::mysql::{self, LoginError};
use occopus_plugin_basic::net;

struct Server {
    host: String,
    port: u16,
    user: String,
    pass: String,
    db: String,
}

fn server() -> Server {
    let spec = std::env::var("OCCOPUS_TEST_MYSQL").unwrap_or_else(|_| {
        panic!(
            "set OCCOPUS_TEST_MYSQL=host:port:user:password:database to run this test \
             against a MariaDB/MySQL server"
        )
    });
    let parts: Vec<&str> = spec.splitn(5, ':').collect();
    let [host, port, user, pass, db] = parts[..] else {
        panic!("OCCOPUS_TEST_MYSQL must be host:port:user:password:database, got {spec:?}")
    };
    Server {
        host: host.into(),
        port: port
            .parse()
            .expect("OCCOPUS_TEST_MYSQL: port is not a number"),
        user: user.into(),
        pass: pass.into(),
        db: db.into(),
    }
}

fn login(s: &Server, user: &str, pass: &str, db: &str) -> Result<mysql::LoggedIn, LoginError> {
    let stream = net::connect(&s.host, s.port, 5_000)?;
    mysql::login(stream, user, pass, db)
}

#[test]
#[ignore = "needs a MySQL server: set OCCOPUS_TEST_MYSQL and run with --ignored"]
fn logs_in_to_a_real_server() {
    let s = server();
    let ok = login(&s, &s.user, &s.pass, &s.db).unwrap();
    assert!(!ok.server_version.is_empty());
}

#[test]
#[ignore = "needs a MySQL server: set OCCOPUS_TEST_MYSQL and run with --ignored"]
fn a_wrong_password_is_refused_with_the_server_message() {
    let s = server();
    let wrong = format!("{}-wrong", s.pass);
    match login(&s, &s.user, &wrong, &s.db) {
        Err(LoginError::Server { code, message }) => {
            assert_eq!(code, 1045, "{message}");
            assert!(message.contains("Access denied"), "{message}");
            assert!(!message.contains(&wrong));
        }
        other => panic!("expected access denied, got {other:?}"),
    }
}

#[test]
#[ignore = "needs a MySQL server: set OCCOPUS_TEST_MYSQL and run with --ignored"]
fn an_unknown_database_is_refused() {
    let s = server();
    match login(&s, &s.user, &s.pass, "occopus_no_such_db") {
        Err(LoginError::Server { code, message }) => {
            // 1044: access denied to the database; 1049: unknown database.
            assert!(code == 1044 || code == 1049, "{code}: {message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
#[ignore = "needs a MySQL server: set OCCOPUS_TEST_MYSQL and run with --ignored"]
fn a_closed_port_fails_fast() {
    let s = server();
    // Port 1 on the same host: nothing listens there.
    let e = net::connect(&s.host, 1, 2_000).unwrap_err();
    assert!(matches!(e, LoginError::Io(_)), "{e}");
}
