//! A bot that answers every message in the room.
//!
//! ```text
//! cargo run --example echo_bot -- ws://localhost:70 botusr BOT_TOKEN
//! ```

use clichat_client::{Event, ServerAddress, connect};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: echo_bot ADDRESS BOT_NAME BOT_TOKEN";
    let address = ServerAddress::parse(&args.next().ok_or(usage)?)?;
    let name = args.next().ok_or(usage)?;
    let token = args.next().ok_or(usage)?;

    let mut bot = connect(&address).await?.login_bot(&name, &token).await?;
    while let Some(event) = bot.next_event().await {
        match event {
            Event::Message { from, text } => bot.send(&format!("{from} said: {text}")).await?,
            Event::Join(name) => bot.send(&format!("welcome, {name}")).await?,
            Event::Closed(closed) => println!("closed: {closed:?}"),
            _ => {}
        }
    }
    Ok(())
}
