//! The functions of the backend and what each one needs, so that a function is built with
//! just that: `ws-disconnect` reaches no Google API and holds no Google key, `broadcast` no
//! Firestore client.

use crate::http::Route;
use crate::ws::WsRoute;

/// One deployed function, or every route at once (the local gateway, the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Http(Route),
    Ws(WsRoute),
    /// The scheduled sweeper of products stuck in `processing`.
    Sweeper,
    /// Every route in one process.
    Everything,
}

/// Whether a function needs a part that only some functions need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    No,
    /// Built when configured.
    Optional,
    /// The function does not start without it.
    Required,
}

/// What a function needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Needs {
    /// The connection table and event log (DynamoDB): every function but `GET /me`.
    pub table: bool,
    /// The document store (Firestore, with the Google service account).
    pub documents: bool,
    /// Posting frames to sockets.
    pub pushes: bool,
    /// Verifying ID tokens (Google's keys).
    pub id_tokens: bool,
    /// Accepting the service key (`X-Service-Key`).
    pub service_key: bool,
    pub ai: Need,
    pub images: Need,
}

const REST: Needs = Needs {
    table: true,
    documents: true,
    pushes: true,
    id_tokens: true,
    service_key: true,
    ai: Need::No,
    images: Need::No,
};

impl Function {
    /// Every deployed function.
    pub fn all() -> impl Iterator<Item = Function> {
        Route::ALL
            .into_iter()
            .map(Function::Http)
            .chain(WsRoute::ALL.into_iter().map(Function::Ws))
            .chain(std::iter::once(Function::Sweeper))
    }

    /// Its name: the Lambda, the Cargo binary, the `events/` sample.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http(route) => route.function(),
            Self::Ws(route) => route.function(),
            Self::Sweeper => "sweep-stuck",
            Self::Everything => "local-gateway",
        }
    }

    pub fn needs(self) -> Needs {
        match self {
            Self::Http(route) => match route {
                Route::Login | Route::ListBusinesses | Route::ListProducts => Needs {
                    pushes: false,
                    ..REST
                },
                // Answered from the credentials alone.
                Route::Me => Needs {
                    table: false,
                    documents: false,
                    pushes: false,
                    ..REST
                },
                Route::ListEvents => Needs {
                    documents: false,
                    pushes: false,
                    ..REST
                },
                Route::Broadcast => Needs {
                    documents: false,
                    id_tokens: false,
                    ..REST
                },
                Route::UploadProductImage => Needs {
                    images: Need::Required,
                    ..REST
                },
                Route::GenerateAdImage => Needs {
                    images: Need::Required,
                    ai: Need::Required,
                    ..REST
                },
                Route::CreateBusiness
                | Route::CreateProduct
                | Route::UpdateProduct
                | Route::DeleteProduct
                | Route::UpdateUser => REST,
            },
            Self::Ws(route) => Needs {
                table: true,
                documents: false,
                pushes: route == WsRoute::Default,
                id_tokens: route != WsRoute::Disconnect,
                service_key: false,
                ai: Need::No,
                images: Need::No,
            },
            Self::Sweeper => Needs {
                id_tokens: false,
                service_key: false,
                ..REST
            },
            Self::Everything => Needs {
                ai: Need::Optional,
                images: Need::Optional,
                ..REST
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_functions_that_touch_documents_hold_the_google_key() {
        let with_documents: Vec<&str> = Function::all()
            .filter(|f| f.needs().documents)
            .map(Function::name)
            .collect();
        for name in [
            "ws-connect",
            "ws-disconnect",
            "ws-default",
            "broadcast",
            "events-list",
            "me",
        ] {
            assert!(!with_documents.contains(&name), "{name}");
        }
        assert!(with_documents.contains(&"products-update"));
        assert!(with_documents.contains(&"sweep-stuck"));
        assert_eq!(Function::all().count(), 17);
        let without_table: Vec<&str> = Function::all()
            .filter(|f| !f.needs().table)
            .map(Function::name)
            .collect();
        assert_eq!(without_table, ["me"]);
    }
}
