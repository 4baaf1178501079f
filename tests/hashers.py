"""A cheap PBKDF2 for tests whose hashes production settings still verify.

PBKDF2 stores its iteration count in the hash, so a password hashed here with few
iterations logs in through a child process (daphne) running the production hashers.
MD5 would not: production does not accept it.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
