//! The daemon behind TLS, user/password authentication and access control,
//! configured by the committed examples `configs/zenoh/secure.json5` (daemon)
//! and `configs/zenoh/robot.json5` (robot) with the test certificates of
//! `tests/fixtures/tls` (made by `configs/zenoh/make-certs.sh`): an
//! authenticated robot is served; a peer without the right credentials, or
//! without TLS, or not trusting the daemon's authority, cannot open a
//! session; a robot cannot forge another robot's outputs.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ebm_msgs::{Encoding, ForecastRequest};

use crate::harness::{
    check_forecast, matched_publisher, put, query, receive_until, state, within, Harness, Received,
};

const USERS: &str = "robot-1:first-secret\nrobot-2:second-secret\n";

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A committed example with its `/etc/ebm-runtime` paths moved to `dir`.
fn example(name: &str, dir: &Path) -> Result<String> {
    let text = std::fs::read_to_string(repo().join("configs/zenoh").join(name))?;
    Ok(text.replace("/etc/ebm-runtime", &dir.display().to_string()))
}

/// `dir` holding `tls/` (the fixture certificates), `users.txt` and the
/// daemon's zenoh file, `secure.json5`.
fn deployment(dir: &Path) -> Result<()> {
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls)?;
    for f in ["ca.pem", "daemon.pem", "daemon.key"] {
        std::fs::copy(repo().join("tests/fixtures/tls").join(f), tls.join(f))?;
    }
    std::fs::write(dir.join("users.txt"), USERS)?;
    std::fs::write(dir.join("secure.json5"), example("secure.json5", dir)?)?;
    Ok(())
}

/// A robot's zenoh config from `configs/zenoh/robot.json5`, connecting to
/// `endpoint` as `user`; `retry_ms` 0 tries once (a refused login fails
/// at once).
fn robot_config(
    dir: &Path,
    endpoint: &str,
    login: Option<(&str, &str)>,
    retry_ms: i64,
) -> Result<zenoh::Config> {
    let file = dir.join(format!("robot-{}.json5", login.map_or("none", |l| l.0)));
    let text = example("robot.json5", dir)?.replace("tls/localhost:7447", endpoint);
    std::fs::write(&file, text)?;
    let mut c = zenoh::Config::from_file(&file).map_err(|e| anyhow!("{e}"))?;
    let set = |c: &mut zenoh::Config, key: &str, value: String| {
        c.insert_json5(key, &value)
            .map_err(|e| anyhow!("{key}: {e}"))
    };
    match login {
        Some((user, password)) => {
            set(&mut c, "transport/auth/usrpwd/user", format!("{user:?}"))?;
            set(
                &mut c,
                "transport/auth/usrpwd/password",
                format!("{password:?}"),
            )?;
        }
        None => set(&mut c, "transport/auth/usrpwd", "{}".into())?,
    }
    set(&mut c, "connect/timeout_ms", retry_ms.to_string())?;
    Ok(c)
}

async fn opens(config: zenoh::Config) -> bool {
    match tokio::time::timeout(Duration::from_secs(20), zenoh::open(config)).await {
        Ok(Ok(session)) => {
            let _ = session.close().await;
            true
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_login_required_and_robots_cannot_forge_outputs() -> Result<()> {
    let dir = tempfile::tempdir()?;
    deployment(dir.path())?;
    let port = ebm_runtime::transport::free_loopback_endpoint()?
        .rsplit(':')
        .next()
        .context("port")?
        .to_owned();
    let endpoint = format!("tls/localhost:{port}");
    let d = dir.path().to_owned();
    let h = Harness::start_with(
        |cfg| {
            cfg.zenoh.config = Some(d.join("secure.json5"));
            cfg.zenoh.listen = vec![endpoint.clone()];
            // The reference limit (512 KiB): states and queries only.
            cfg.zenoh.max_message_bytes = ebm_runtime::RuntimeConfig::default()
                .zenoh
                .max_message_bytes;
        },
        |_| robot_config(&d, &endpoint, Some(("robot-1", "first-secret")), 20_000),
    )
    .await?;

    // Served: streamed forecasts and a query.
    let mut outputs = h.outputs("r1").await?;
    let p = h.publisher("r1").await?;
    for seq in 0..3 {
        put(&p, &state("r1", seq, 0.1 * seq as f32), Encoding::Bincode).await?;
    }
    let mut rec = Received::default();
    receive_until(&mut outputs, &mut rec, |r| !r.forecasts.is_empty()).await?;
    check_forecast(&rec.forecasts[0], 5, 4);
    let req = ForecastRequest {
        robot_id: "r1".into(),
        horizon: 3,
        particles: 2,
        deadline_ms: None,
    };
    let (reply, _) = query(&h, &req, Encoding::Json).await?;
    check_forecast(&reply.map_err(|e| anyhow!("{e:?}"))?, 3, 2);

    // Refused: a wrong password, no login, no TLS, a client that does not
    // trust the fleet's authority.
    let d = dir.path();
    assert!(!opens(robot_config(d, &endpoint, Some(("robot-1", "wrong")), 0)?).await);
    assert!(!opens(robot_config(d, &endpoint, Some(("intruder", "x")), 0)?).await);
    assert!(!opens(robot_config(d, &endpoint, None, 0)?).await);
    let mut plain = robot_config(d, &endpoint, Some(("robot-1", "first-secret")), 0)?;
    let tcp = format!("[\"tcp/127.0.0.1:{port}\"]");
    plain
        .insert_json5("connect/endpoints", &tcp)
        .map_err(|e| anyhow!("{e}"))?;
    assert!(!opens(plain).await, "a plain TCP session was accepted");
    let mut untrusting = robot_config(d, &endpoint, Some(("robot-1", "first-secret")), 0)?;
    untrusting
        .insert_json5("transport/link/tls/root_ca_certificate", "null")
        .map_err(|e| anyhow!("{e}"))?;
    assert!(!opens(untrusting).await, "a client accepted an unknown CA");
    // The control: the right login still opens a session.
    assert!(
        opens(robot_config(
            d,
            &endpoint,
            Some(("robot-2", "second-secret")),
            0
        )?)
        .await
    );

    // Forging: robot-1 puts a fake forecast for robot "victim", then a
    // state (allowed) on the same link; robot-2, subscribed to both, gets
    // the state (so routing works) and never the forecast.
    let other = within(
        "robot-2 session",
        zenoh::open(robot_config(
            d,
            &endpoint,
            Some(("robot-2", "second-secret")),
            20_000,
        )?),
    )
    .await?
    .map_err(|e| anyhow!("{e}"))?;
    let seen = other
        .declare_subscriber("ebm/victim/*")
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let forged = matched_publisher(&h.session, "ebm/victim/state".into()).await?;
    // Routing first: robot-2's subscription reaches robot-1 through the
    // daemon a moment after it is declared, so states go out until one
    // arrives (the publisher's matching status is already met by the
    // daemon's own subscriber).
    let routed = async {
        loop {
            forged
                .put(b"not a state".to_vec())
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(200), seen.recv_async()).await
            {
                return Ok::<_, anyhow::Error>(s);
            }
        }
    };
    let first = within("robot-2 sees robot-1's state", routed).await??;
    assert_eq!(first.key_expr().as_str(), "ebm/victim/state");
    // Then the forgery, followed on the same link by a state: once that
    // state is in, the forecast would have been too.
    h.session
        .put("ebm/victim/forecast", b"forged".to_vec())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    forged
        .put(b"after the forgery".to_vec())
        .await
        .map_err(|e| anyhow!("{e}"))?;
    loop {
        let s = within(
            "robot-2 sees the state after the forgery",
            seen.recv_async(),
        )
        .await?
        .map_err(|e| anyhow!("{e}"))?;
        assert_ne!(
            s.key_expr().as_str(),
            "ebm/victim/forecast",
            "a forged forecast was routed"
        );
        if s.payload().to_bytes().as_ref() == b"after the forgery" {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    while let Ok(Some(s)) = seen.try_recv() {
        assert_ne!(
            s.key_expr().as_str(),
            "ebm/victim/forecast",
            "a forged forecast was routed"
        );
    }
    other.close().await.map_err(|e| anyhow!("{e}"))?;
    h.stop().await
}
