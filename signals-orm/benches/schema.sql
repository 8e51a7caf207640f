-- The schema of the performance benchmark, shared by the Rust side and by Django
-- (benches/django/bench.py creates its tables from this file, not from migrations), so both
-- write to identical tables. `{serial}` is the database-generated integer key of the backend.
-- The foreign keys have an index each, as Django gives every `ForeignKey` (the cascade of
-- workload 8 finds the children of the parents it deletes through `children_parent_id`, and so
-- does the database when it checks the constraint of each parent deleted).
CREATE TABLE users (id {serial}, name TEXT NOT NULL);
CREATE TABLE profiles (
    id {serial},
    user_id BIGINT NOT NULL REFERENCES users (id),
    bio TEXT NOT NULL);
CREATE INDEX profiles_user_id ON profiles (user_id);
CREATE TABLE posts (id {serial}, title TEXT NOT NULL);
CREATE TABLE tags (id {serial}, name TEXT NOT NULL);
CREATE TABLE post_tags (
    id {serial},
    post_id BIGINT NOT NULL REFERENCES posts (id),
    tag_id BIGINT NOT NULL REFERENCES tags (id),
    UNIQUE (post_id, tag_id));
CREATE INDEX post_tags_tag_id ON post_tags (tag_id);
CREATE TABLE parents (id {serial}, name TEXT NOT NULL);
CREATE TABLE children (
    id {serial},
    parent_id BIGINT NOT NULL REFERENCES parents (id),
    label TEXT NOT NULL);
CREATE INDEX children_parent_id ON children (parent_id);
