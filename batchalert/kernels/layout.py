"""Constants shared by the compiled kernels and the Python code around them.

This module imports nothing, so that code using the ahead-of-time compiled kernels never
loads numba. The kernels' build digest covers it (see `batchalert.kernels`).
"""

# --- record batches (message format v2) ---------------------------------------------------------

BATCH_HEADER_BYTES = 61
# Base offset and length precede the rest of every batch, and `length` counts the bytes after them.
LOG_OVERHEAD_BYTES = 12

# Columns of the header table that `scan_headers` builds, one row per complete batch.
(COL_POSITION, COL_SIZE, COL_BASE_OFFSET, COL_MAGIC, COL_CRC, COL_ATTRIBUTES,
 COL_LAST_OFFSET_DELTA, COL_FIRST_TIMESTAMP, COL_MAX_TIMESTAMP, COL_PRODUCER_ID,
 COL_RECORD_COUNT) = range(11)
HEADER_COLUMNS = 11

# Status codes of `count_batches`, where 0 means the input was valid.
SCAN_SHORT_BATCH = 1
SCAN_OLD_MAGIC = 2

# Rows of the output table of `decode_batches`, one column per decoded record.
(OUT_OFFSET, OUT_TIMESTAMP, OUT_KEY_POSITION, OUT_KEY_LENGTH, OUT_VALUE_POSITION,
 OUT_VALUE_LENGTH) = range(6)

# --- the envelope screen ------------------------------------------------------------------------

SCREEN_MAX_DEPTH = 64  # serde_json allows 128; deeper values are left to the full parser

# Roles of the top-level fields the screen looks at.
ROLE_LINE, ROLE_TAG, ROLE_STREAM = 0, 1, 2

# --- reading envelope fields --------------------------------------------------------------------

FIELDS_MAX_DEPTH = 64  # as the screen; deeper values are left to Polars' JSON reader

# Kinds of field value that `locate_fields` finds: nothing (or null), a string whose escapes
# are to be decoded, text to copy as it is (true, false, an integer), or a decimal number
# whose trailing zeros Polars drops.
FIELD_ABSENT, FIELD_STRING, FIELD_TEXT, FIELD_DECIMAL = range(4)
