from mailgrant.cli.management.commands.worker import Command as WorkerCommand


class Command(WorkerCommand):
    help = "The same as `mailgrant worker` (its older name): " + WorkerCommand.help
