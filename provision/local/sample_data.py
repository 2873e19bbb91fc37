"""The locally served API's database: the config's table in a throwaway MariaDB, with a few rows.

Two rows for key 42 and one for key 7, so one key returns a list, another a
single item, and 99 none; the columns cover a DECIMAL, a DATETIME and a NULL,
the values a JSON API most easily gets wrong.
"""
from __future__ import annotations

from .mariadb import MariaDB

KEY_WITH_TWO_ROWS, KEY_WITH_ONE_ROW, KEY_WITHOUT_ROWS = "42", "7", "99"
ROWS = (  # (key, total, placed_at, note)
    (KEY_WITH_TWO_ROWS, "19.90", "2026-11-02 09:15:00", "gift wrap"),
    (KEY_WITH_TWO_ROWS, "1250.00", "2026-11-20 17:45:30", None),
    (KEY_WITH_ONE_ROW, "4.50", "2026-10-31 23:59:59", "café, two sugars"),
)


def load(server: MariaDB, database: str, user: str, password: str, table: str, key_column: str) -> None:
    """Create the database, a SELECT-only user and the table with its rows (identifiers come checked by config)."""
    server.create_database(database, user, password)
    with server.admin(database) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` (order_id INT AUTO_INCREMENT PRIMARY KEY,"
                    f" `{key_column}` VARCHAR(64) NOT NULL, total DECIMAL(12,2) NOT NULL,"
                    f" placed_at DATETIME NOT NULL, note VARCHAR(200) NULL, KEY (`{key_column}`))"
                    f" CHARACTER SET utf8mb4")
        cur.executemany(f"INSERT INTO `{table}` (`{key_column}`, total, placed_at, note) VALUES (%s, %s, %s, %s)",
                        ROWS)
