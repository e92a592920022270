from qrvey_iac.cli import main

if __name__ == "__main__":
    main()
