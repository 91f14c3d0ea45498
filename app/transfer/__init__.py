"""Export and import of a tenant's data (KV buckets, keys, objects) as a versioned archive, and the
restore of a deleted KV bucket from its kept change feed."""
