"""What exists: dataset cards, Arrow schemas, the Parquet writer, DuckDB queries and reports."""
