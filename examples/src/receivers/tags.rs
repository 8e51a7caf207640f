//! Use case 9: keep each tag's `post_count` right from `m2m_changed`, from both sides of the
//! relation. `pre_remove` narrows `pk_set` to the tags really linked (Django reports every key
//! passed), and `pre_clear` counts down the tags about to be unlinked.

use signals_orm::{AnyTx, BoxError, M2mAction, M2mChanged, M2mSide, receiver};

use crate::db;
use crate::models::PostTags;

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
