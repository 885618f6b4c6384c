//! Every RPC × every role (and no token, and a wrong token) against a real server:
//! the role table is enforced on the wire with the right status codes.

mod support;

use airlock_control_plane::api;
use support::{authed, Plane, TOKENS};
use tonic::Code;

#[derive(Debug, Clone, Copy)]
enum Call {
    Publish,
    List,
    Get,
    Activate,
    Watch,
    Report,
    NodeList,
}

/// The code an allowed caller gets: the RPC's own answer to a harmless request.
fn allowed_code(call: Call) -> Code {
    match call {
        Call::Publish => Code::InvalidArgument, // the archive is garbage
        Call::Get | Call::Activate => Code::NotFound, // no such revision
        Call::List | Call::Watch | Call::Report | Call::NodeList => Code::Ok,
    }
}

/// Which roles may call: admin, reviewer, auditor, node.
fn allowed(call: Call) -> [bool; 4] {
    match call {
        Call::Publish | Call::Activate => [true, false, false, false],
        Call::List => [true, true, true, false],
        Call::Get => [true, false, true, true],
        Call::Watch => [true, false, false, true],
        Call::Report => [false, false, false, true],
        Call::NodeList => [true, false, true, false],
    }
}

async fn invoke(plane: &Plane, call: Call, token: Option<&str>) -> Code {
    fn req<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
        match token {
            Some(token) => authed(message, token),
            None => tonic::Request::new(message),
        }
    }
    let mut bundles = plane.bundles().await;
    let mut nodes = plane.nodes().await;
    let result = match call {
        Call::Publish => {
            let message = api::BundleServicePublishRequest {
                archive: b"not a bundle".to_vec().into(),
                no_activate: false,
            };
            bundles.publish(req(message, token)).await.map(drop)
        }
        Call::List => bundles
            .list(req(api::BundleServiceListRequest {}, token))
            .await
            .map(drop),
        Call::Get => {
            let message = api::BundleServiceGetRequest {
                revision: "nope".into(),
            };
            bundles.get(req(message, token)).await.map(drop)
        }
        Call::Activate => {
            let message = api::BundleServiceActivateRequest {
                revision: "nope".into(),
            };
            bundles.activate(req(message, token)).await.map(drop)
        }
        Call::Watch => {
            let message = api::BundleServiceWatchRequest {
                node_id: "n1".into(),
            };
            bundles.watch(req(message, token)).await.map(drop)
        }
        Call::Report => {
            let message = api::NodeServiceReportRequest {
                node_id: "n1".into(),
                ..Default::default()
            };
            nodes.report(req(message, token)).await.map(drop)
        }
        Call::NodeList => nodes
            .list(req(api::NodeServiceListRequest {}, token))
            .await
            .map(drop),
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn every_rpc_enforces_the_role_table() {
    let dir = tempfile::tempdir().unwrap();
    let key = airlock_bundle::SigningKey::generate();
    let plane = Plane::start(dir.path(), &key).await;
    let calls = [
        Call::Publish,
        Call::List,
        Call::Get,
        Call::Activate,
        Call::Watch,
        Call::Report,
        Call::NodeList,
    ];
    let mut checked = 0;
    for call in calls {
        for ((role, token, _), may) in TOKENS.iter().zip(allowed(call)) {
            let expected = if may {
                allowed_code(call)
            } else {
                Code::PermissionDenied
            };
            let got = invoke(&plane, call, Some(token)).await;
            assert_eq!(got, expected, "{call:?} as {role}");
            checked += 1;
        }
        assert_eq!(
            invoke(&plane, call, None).await,
            Code::Unauthenticated,
            "{call:?} without a token"
        );
        assert_eq!(
            invoke(&plane, call, Some("wrong")).await,
            Code::Unauthenticated,
            "{call:?} with a wrong token"
        );
    }
    assert_eq!(checked, 28);
    plane.stop().await;
}
