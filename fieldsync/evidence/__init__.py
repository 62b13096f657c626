"""Photo evidence (取证照片): content-addressed blobs, hashing, image checks and derivatives."""
