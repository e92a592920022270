"""In-memory fakes of the ports (qrvey_iac/ports.py), for unit tests and the contract suites."""
