//! The scheduled Lambda that marks products stuck in `processing` as `failed`.

use adsync::function::Function;

fn main() -> Result<(), adsync::lambda::Error> {
    adsync::lambda::start(Function::Sweeper)
}
