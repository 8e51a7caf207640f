//! Muting scopes: task-local, so parallel tests and tasks do not mute each other.

use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::{Mute, Sender, Signal, receiver};

struct UserModel;
struct OrderModel;

#[derive(Signal)]
struct Saved;
static FROM_USER: AtomicUsize = AtomicUsize::new(0);
static FROM_ORDER: AtomicUsize = AtomicUsize::new(0);

#[receiver(Saved, sender = UserModel)]
fn count_user(_: &Saved) {
    FROM_USER.fetch_add(1, Ordering::SeqCst);
}

#[receiver(Saved, sender = OrderModel)]
fn count_order(_: &Saved) {
    FROM_ORDER.fetch_add(1, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_task_does_not_mute_a_concurrent_task() {
    let muted = tokio::spawn(Mute::new().signal::<Saved>().scope(async {
        for _ in 0..100 {
            signals_core::send(Sender::of::<UserModel>(), &Saved)
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
    }));
    let loud = tokio::spawn(async {
        for _ in 0..100 {
            signals_core::send(Sender::of::<OrderModel>(), &Saved)
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
    });
    muted.await.unwrap();
    loud.await.unwrap();
    assert_eq!(FROM_USER.load(Ordering::SeqCst), 0);
    assert_eq!(FROM_ORDER.load(Ordering::SeqCst), 100);
}

#[derive(Signal)]
struct PerSender;
static PER_SENDER: AtomicUsize = AtomicUsize::new(0);

#[receiver(PerSender)]
fn count_per_sender(_: &PerSender) {
    PER_SENDER.fetch_add(1, Ordering::SeqCst);
}

#[derive(Signal)]
struct Other;
static OTHER: AtomicUsize = AtomicUsize::new(0);

#[receiver(Other)]
fn count_other(_: &Other) {
    OTHER.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn muting_one_sender_keeps_the_others_and_other_signals() {
    Mute::new()
        .signal_from::<PerSender, UserModel>()
        .sync_scope(|| {
            signals_core::send_sync(Sender::of::<UserModel>(), &PerSender).unwrap();
            signals_core::send_sync(Sender::of::<OrderModel>(), &PerSender).unwrap();
            signals_core::send_sync(Sender::NONE, &Other).unwrap();
            assert!(
                signals_core::has_listeners::<PerSender>(Sender::of::<UserModel>()),
                "muting does not disconnect"
            );
        });
    assert_eq!(PER_SENDER.load(Ordering::SeqCst), 1);
    assert_eq!(OTHER.load(Ordering::SeqCst), 1);
    // Outside the scope everything is delivered again.
    signals_core::send_sync(Sender::of::<UserModel>(), &PerSender).unwrap();
    assert_eq!(PER_SENDER.load(Ordering::SeqCst), 2);
}

#[derive(Signal)]
struct NestedA;
#[derive(Signal)]
struct NestedB;
static NESTED: AtomicUsize = AtomicUsize::new(0);

#[receiver(NestedA)]
fn nested_a(_: &NestedA) {
    NESTED.fetch_add(1, Ordering::SeqCst);
}

#[receiver(NestedB)]
fn nested_b(_: &NestedB) {
    NESTED.fetch_add(10, Ordering::SeqCst);
}

#[tokio::test]
async fn nested_scopes_add_to_the_outer_one() {
    Mute::new()
        .signal::<NestedA>()
        .scope(async {
            Mute::new()
                .signal::<NestedB>()
                .scope(async {
                    signals_core::send(Sender::NONE, &NestedA).await.unwrap();
                    signals_core::send(Sender::NONE, &NestedB).await.unwrap();
                })
                .await;
            assert_eq!(
                NESTED.load(Ordering::SeqCst),
                0,
                "both muted inside the inner scope"
            );
            signals_core::send(Sender::NONE, &NestedB).await.unwrap();
            assert_eq!(
                NESTED.load(Ordering::SeqCst),
                10,
                "only A muted after the inner scope"
            );
        })
        .await;
}
