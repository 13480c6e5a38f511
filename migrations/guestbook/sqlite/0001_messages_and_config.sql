-- The guestbook's storage contract: instructors read these tables with the sqlite3 CLI.
CREATE TABLE IF NOT EXISTS messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL,
    message    TEXT NOT NULL,
    replica    TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Configuration kept in the database on purpose (12-factor III, the lesson).
CREATE TABLE IF NOT EXISTS config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
