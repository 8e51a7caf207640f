-- The shop's schema. Default rows (the shipping methods) are seeded by the post_migrate
-- receiver `seed::seed_shipping_methods`, not here: reruns of `migrate` seed what is missing.
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, online BOOLEAN NOT NULL DEFAULT FALSE, last_login BIGINT);
CREATE TABLE profiles (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES customers (id), bio TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, stock BIGINT NOT NULL, price_cents BIGINT NOT NULL, image_path TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES customers (id), email TEXT NOT NULL, product_id BIGINT NOT NULL REFERENCES products (id), quantity BIGINT NOT NULL, total_cents BIGINT NOT NULL, paid BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer_id BIGINT NOT NULL REFERENCES customers (id), order_id BIGINT NOT NULL REFERENCES orders (id));
CREATE TABLE audit_log (id INTEGER PRIMARY KEY, actor TEXT NOT NULL, action TEXT NOT NULL, model TEXT NOT NULL, object_pk TEXT NOT NULL, data TEXT NOT NULL, at BIGINT NOT NULL);
CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL, post_count BIGINT NOT NULL DEFAULT 0);
CREATE TABLE post_tags (post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE, tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE, PRIMARY KEY (post_id, tag_id));
CREATE TABLE shipping_methods (code TEXT PRIMARY KEY, name TEXT NOT NULL, price_cents BIGINT NOT NULL);
