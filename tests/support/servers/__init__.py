"""Local servers the storage tests talk to over real HTTP: moto (S3), a MAST stand-in, a faulty proxy."""
