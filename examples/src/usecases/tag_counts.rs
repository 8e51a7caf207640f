//! Use case 9: tags on posts, and each tag's `post_count` kept right by an `m2m_changed`
//! receiver, from both sides of the relation, through add, remove (of a tag never linked, too),
//! reverse add and clear. `pre_remove` narrows `pk_set` to the tags really linked (Django
//! reports every key passed), and `pre_clear` counts down the tags about to be unlinked.

use signals_orm::m2m::{M2mAction, M2mChanged, M2mSide};
use signals_orm::model_signals::PostSaveSignal;
use signals_orm::{AnyTx, BoxError, ModelExt as _, Mute, receiver};

use crate::db;
use crate::models::{Post, PostTags, Tag};
use crate::run::Run;
use crate::{Error, on_db};

const BUMP: &str = "UPDATE tags SET post_count = post_count + $1 WHERE id = $2";

#[receiver(m2m_changed, sender = PostTags)]
async fn count_posts_per_tag(
    ev: M2mChanged<'_, PostTags>,
    mut tx: AnyTx<'_>,
) -> Result<(), BoxError> {
    match ev.side {
        M2mSide::Forward {
            instance: post,
            pk_set,
        } => {
            let post = post.id.unwrap_or_default();
            match (ev.action, pk_set) {
                (M2mAction::PreRemove, Some(tags)) => {
                    let linked = db::integers(
                        &mut tx,
                        "SELECT tag_id FROM post_tags WHERE post_id = $1",
                        &[post],
                    )
                    .await?;
                    tags.retain(|t| linked.contains(t));
                }
                (M2mAction::PostAdd, Some(tags)) => {
                    bump_all(&mut tx, tags.iter().copied(), 1).await?;
                }
                (M2mAction::PostRemove, Some(tags)) => {
                    bump_all(&mut tx, tags.iter().copied(), -1).await?;
                }
                (M2mAction::PreClear, None) => {
                    let linked = db::integers(
                        &mut tx,
                        "SELECT tag_id FROM post_tags WHERE post_id = $1",
                        &[post],
                    )
                    .await?;
                    bump_all(&mut tx, linked, -1).await?;
                }
                _ => {}
            }
        }
        M2mSide::Reverse {
            instance: tag,
            pk_set,
        } => {
            let tag = tag.id.unwrap_or_default();
            match (ev.action, pk_set) {
                (M2mAction::PreRemove, Some(posts)) => {
                    let linked = db::integers(
                        &mut tx,
                        "SELECT post_id FROM post_tags WHERE tag_id = $1",
                        &[tag],
                    )
                    .await?;
                    posts.retain(|p| linked.contains(p));
                }
                (M2mAction::PostAdd, Some(posts)) => {
                    bump_all(&mut tx, [tag], i64::try_from(posts.len())?).await?;
                }
                (M2mAction::PostRemove, Some(posts)) => {
                    bump_all(&mut tx, [tag], -i64::try_from(posts.len())?).await?;
                }
                (M2mAction::PostClear, None) => {
                    db::execute(
                        &mut tx,
                        "UPDATE tags SET post_count = 0 WHERE id = $1",
                        &[tag],
                    )
                    .await?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

async fn bump_all(
    tx: &mut AnyTx<'_>,
    tags: impl IntoIterator<Item = i64>,
    by: i64,
) -> Result<(), sqlx::Error> {
    for tag in tags {
        db::execute(tx, BUMP, &[by, tag]).await?;
    }
    Ok(())
}

/// Creates three tags and two posts, then links and unlinks them from both sides; returns
/// `(tag, post_count)` by tag name.
///
/// # Errors
///
/// A failed write.
pub async fn run(run: &Run) -> Result<Vec<(String, i64)>, Error> {
    on_db!(&run.db, |pool| {
        let mut tags = Vec::new();
        for name in ["rust", "sql", "signals"] {
            let mut tag = Tag {
                id: None,
                name: name.into(),
                post_count: 0,
            };
            tag.save(pool).await?;
            tags.push(tag.id.ok_or("no key")?);
        }
        let [rust, sql, signals] = [tags[0], tags[1], tags[2]];
        let mut first = Post {
            id: None,
            title: "Typed signals".into(),
        };
        first.save(pool).await?;
        let mut second = Post {
            id: None,
            title: "Transactions".into(),
        };
        second.save(pool).await?;
        PostTags::of(&first).add(pool, [rust, signals]).await?;
        PostTags::of(&second)
            .add(pool, [rust, sql, signals])
            .await?;
        PostTags::of(&second).remove(pool, [signals, 9_999]).await?; // 9999 was never linked
        let sql_tag = Tag::get(pool, &sql).await?.ok_or("no tag")?;
        PostTags::of_target(&sql_tag)
            .add(pool, [first.id.ok_or("no key")?])
            .await?;
        PostTags::of(&first).clear(pool).await?;
        let counted = run
            .db
            .texts("SELECT name || '=' || CAST(post_count AS TEXT) FROM tags ORDER BY name")
            .await?;
        Ok::<_, Error>(
            counted
                .into_iter()
                .filter_map(|t| {
                    t.split_once('=')
                        .map(|(n, c)| (n.to_owned(), c.parse().unwrap_or(-1)))
                })
                .collect(),
        )
    })
}

/// What the `tag_counts` program mutes around [`run`]: the `post_save` of `Tag` and `Post`,
/// heard by `audit_log`. The `m2m_changed` signal of `PostTags` has no other receiver.
pub fn mute_others() -> Mute {
    Mute::new()
        .signal_from::<PostSaveSignal, Tag>()
        .signal_from::<PostSaveSignal, Post>()
}
