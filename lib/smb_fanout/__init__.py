"""smb-fanout: detect hosts that suddenly open SMB sessions to many new hosts."""

__version__ = "0.1.0"
