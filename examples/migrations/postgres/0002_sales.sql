-- Sales analytics, kept by the durable receiver `product_cache::count_sale` after each order
-- commits: per product, the units sold and the orders (`product_sales`), and the events already
-- counted (`sales_events`, keyed by the job's event id), so that a job run twice counts once.
CREATE TABLE product_sales (product_id BIGINT PRIMARY KEY, units BIGINT NOT NULL, orders BIGINT NOT NULL);
CREATE TABLE sales_events (event_id TEXT PRIMARY KEY, product_id BIGINT NOT NULL, units BIGINT NOT NULL);
