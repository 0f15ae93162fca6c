-- mem.sql: an in-memory sqlite3 session (alloclab programs)
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO items SELECT x, 'item-' || x || '-' || (x * 7919 % 1000), x % 97, (x * 37 % 1000) / 10.0 FROM c;
CREATE INDEX items_name ON items(name);
CREATE INDEX items_grp ON items(grp, val);
SELECT grp, count(*), round(sum(val), 1), min(name), max(name) FROM items GROUP BY grp ORDER BY grp LIMIT 5;
UPDATE items SET name = name || '-updated' WHERE id % 3 = 0;
DELETE FROM items WHERE id % 5 = 0;
SELECT count(*), count(DISTINCT grp), sum(length(name)) FROM items;
SELECT grp, count(*), max(val) FROM items WHERE name LIKE "%-1%" GROUP BY grp ORDER BY 2 DESC, 1 LIMIT 3;
