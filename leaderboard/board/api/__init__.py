"""The REST API (Django REST framework): thin views over the services and selectors."""
