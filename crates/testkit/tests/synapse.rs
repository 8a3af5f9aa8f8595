//! The throwaway Synapse starts, registers users through the shared secret, and carries
//! messages between them; it restarts on the same port with its data.

use cordon_testkit::Synapse;

#[tokio::test]
async fn synapse_starts_registers_and_carries_messages() {
    let started = std::time::Instant::now();
    let mut server = Synapse::start();
    eprintln!("synapse started in {:?}", started.elapsed());
    let alice = server.register("alice").await;
    let bob = server.register("bob").await;
    assert_eq!(alice.user_id, "@alice:localhost");
    let room = server.create_room(&alice, true, &[&bob]).await;
    server.join(&bob, &room).await;
    let mut members = server.joined_members(&alice, &room).await;
    members.sort();
    assert_eq!(members, ["@alice:localhost", "@bob:localhost"]);
    let event = server.send_text(&alice, &room, "hello").await;
    assert_eq!(
        server.event(&bob, &room, &event).await["content"]["body"],
        "hello"
    );

    let restarted = std::time::Instant::now();
    server.restart();
    eprintln!("synapse restarted in {:?}", restarted.elapsed());
    let latest = server.messages(&bob, &room, 1).await;
    assert_eq!(latest[0]["event_id"], event.as_str());
}
