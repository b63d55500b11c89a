"""HTTP only: routes parse, call the service, return schemas. No numpy here."""
