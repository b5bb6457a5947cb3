"""Pure OCI domain: digests, references, media types and manifests. No I/O here."""
