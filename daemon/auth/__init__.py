"""Who may do what: users with argon2 passwords, hashed API tokens, roles and the audit log.

Store-level and framework-free: the CLI (``tcowatch user|token``) and the web app both use it.
Every function takes the caller's ``Session`` and never commits, so a write and its audit entry
land in one transaction. Errors are ``daemon.auth.errors.AuthError`` subclasses whose message
names the problem and never contains a password or a token.
"""
