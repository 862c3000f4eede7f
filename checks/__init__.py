"""The built-in checks, one module per area of the course. Each module registers its checks with @check."""
