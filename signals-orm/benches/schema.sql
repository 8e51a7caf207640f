-- The schema of the performance benchmark, shared by the Rust side and by Django
-- (benches/django/bench.py creates its tables from this file, not from migrations), so both
-- write to identical tables. `{serial}` is the database-generated integer key of the backend.
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
