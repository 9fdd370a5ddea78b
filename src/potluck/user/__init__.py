"""Users, authentication and follows."""
