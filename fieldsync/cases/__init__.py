"""Cases: back-end diversion (后段分流处置) and the case lifecycle up to archive (归档)."""
